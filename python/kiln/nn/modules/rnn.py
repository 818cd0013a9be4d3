"""Recurrent layers: RNN/LSTM/GRU cells and multi-layer (bidirectional) sequence modules, as
torch.nn (same parameter names, shapes, init and gate order), composed from kiln ops."""

import math
import numbers
import warnings

import kiln
from kiln import _C
from kiln.autograd import Function
from kiln.nn import functional as F
from kiln.nn import init
from kiln.nn.modules.module import Module
from kiln.nn.parameter import Parameter

__all__ = ["GRU", "LSTM", "RNN", "GRUCell", "LSTMCell", "RNNBase", "RNNCell", "RNNCellBase"]

_NUM_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ---- one time step: `xi` is the input projection x W_ih^T + b_ih, already computed; w_hh_t is
# W_hh^T made contiguous once per sequence (the backward of a per-step transposed view is slow).


def _hidden_proj(h, w_hh_t, b_hh):
    if b_hh is None:
        return kiln.matmul(h, w_hh_t)
    # One addmm, as PyTorch's linear(h, w_hh, b_hh): under autocast the bias is cast with the
    # product instead of promoting it back to float32.
    return kiln.addmm(b_hh, h, w_hh_t) if h.dim() == 2 else kiln.matmul(h, w_hh_t) + b_hh


def _rnn_step(act):
    def step(xi, state, w_hh_t, b_hh):
        return act(xi + _hidden_proj(state, w_hh_t, b_hh))

    return step


def _lstm_step(xi, state, w_hh_t, b_hh):
    h, c = state
    i, f, g, o = (xi + _hidden_proj(h, w_hh_t, b_hh)).chunk(4, -1)
    c = kiln.sigmoid(f) * c + kiln.sigmoid(i) * kiln.tanh(g)
    return kiln.sigmoid(o) * kiln.tanh(c), c


def _gru_step(xi, h, w_hh_t, b_hh):
    xr, xz, xn = xi.chunk(3, -1)
    hr, hz, hn = _hidden_proj(h, w_hh_t, b_hh).chunk(3, -1)
    r = kiln.sigmoid(xr + hr)
    z = kiln.sigmoid(xz + hz)
    n = kiln.tanh(xn + r * hn)
    return n + z * (h - n)


_STEPS = {
    "RNN_TANH": _rnn_step(kiln.tanh),
    "RNN_RELU": _rnn_step(kiln.relu),
    "LSTM": _lstm_step,
    "GRU": _gru_step,
}


class _TimeSteps(Function):
    """input.unbind(0) with a single backward node that stacks the step gradients: per-step
    select backwards would each build a zero tensor of the whole sequence (O(L^2) work)."""

    @staticmethod
    def forward(ctx, input):
        return input.unbind(0)

    @staticmethod
    def backward(ctx, *grads):
        return kiln.stack(grads, 0)


def _autocast_dtype(mode, input, cell):
    """The dtype PyTorch's autocast runs a recurrent layer in, None when it runs as called:
    LSTM and Elman layers on CPU (its oneDNN kernel is on the CPU list), every layer and
    cell on CUDA (cuDNN's kernel and the fused cells are on the CUDA list)."""
    if not _C._is_autocast_active():
        return None
    device_type = input.device.type
    if not _C.is_autocast_enabled(device_type):
        return None
    if device_type == "cpu" and (cell or mode == "GRU"):
        return None
    return _C.get_autocast_dtype(device_type)


def _autocast_states(states, dtype):
    """States (tensors or (h, c) tuples) cast as autocast casts op inputs."""

    def cast(s):
        if isinstance(s, (tuple, list)):
            return type(s)(cast(t) for t in s)
        return s if s is None else _C._autocast_cast(s, dtype)

    return [cast(s) for s in states]


def _output_of(mode, state):
    return state[0] if mode == "LSTM" else state


def _check_sizes(input_size, hidden_size):
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero")


def _check_dtype(module, input, weight):
    if input.dtype != weight.dtype:
        module._error(
            f"input dtype {input.dtype} does not match weight dtype {weight.dtype}; convert "
            f"the input (input.to({weight.dtype})) or the model (model.to({input.dtype}))",
            ValueError,
        )


def _uniform_all(module):
    # PyTorch's default for every recurrent weight and bias: U(-1/sqrt(hidden), 1/sqrt(hidden)).
    bound = 1.0 / math.sqrt(module.hidden_size) if module.hidden_size > 0 else 0
    for weight in module.parameters():
        init.uniform_(weight, -bound, bound)


# ---- sequence modules ---------------------------------------------------------------------------


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU: parameters per layer and direction
    (weight_ih_l{k}[_reverse], weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}) and the time loop."""

    def __init__(
        self,
        mode,
        input_size,
        hidden_size,
        num_layers=1,
        bias=True,
        batch_first=False,
        dropout=0.0,
        bidirectional=False,
        device=None,
        dtype=None,
    ):
        super().__init__()
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of an "
                "element being zeroed"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=2,
            )
        for name, flag in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(flag).__name__}")
        _check_sizes(input_size, hidden_size)
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if mode not in _NUM_GATES:
            raise ValueError("Unrecognized RNN mode: " + mode)
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = 0
        gate_size = _NUM_GATES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                shapes = {
                    "weight_ih": (gate_size, layer_input),
                    "weight_hh": (gate_size, hidden_size),
                }
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                for kind, shape in shapes.items():
                    name = f"{kind}_l{layer}{suffix}"
                    setattr(self, name, Parameter(kiln.empty(*shape, device=device, dtype=dtype)))
                    self._flat_weights_names.append(name)
        self.reset_parameters()

    def reset_parameters(self):
        _uniform_all(self)

    def flatten_parameters(self):
        """No-op, for torch code that calls it: kiln never packs the weights into one buffer."""

    @property
    def all_weights(self):
        per = 4 if self.bias else 2
        weights = [getattr(self, name) for name in self._flat_weights_names]
        return [weights[i : i + per] for i in range(0, len(weights), per)]

    def _layer_params(self, layer, reverse):
        """(weight_ih, weight_hh, bias_ih, bias_hh) of one layer and direction; biases may be None."""
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        biases = ("bias_ih", "bias_hh") if self.bias else ()
        params = [getattr(self, kind + suffix) for kind in ("weight_ih", "weight_hh", *biases)]
        return tuple(params + [None] * (4 - len(params)))

    def _check_input(self, input):
        _check_dtype(self, input, self.weight_ih_l0)
        if input.dim() not in (2, 3):
            self._shape_error(
                "2-D (unbatched) or 3-D (batched) input", f"{input.dim()}-D", input.shape
            )
        if input.shape[-1] != self.input_size:
            self._shape_error(
                f"input with last dim input_size={self.input_size}",
                f"{input.shape[-1]}",
                input.shape,
            )

    def _check_hidden(self, name, hx, expected, batched):
        want = 3 if batched else 2
        if hx.dim() != want:
            kind = "batched 3-D" if batched else "unbatched 2-D"
            self._shape_error(f"{name} {want}-D for {kind} input", f"{hx.dim()}-D", hx.shape)
        if list(hx.shape) != list(expected):
            self._shape_error(f"{name} of shape {list(expected)}", f"{list(hx.shape)}")
        if hx.dtype != self.weight_ih_l0.dtype:
            self._error(
                f"{name} dtype {hx.dtype} does not match weight dtype {self.weight_ih_l0.dtype}",
                ValueError,
            )

    def _initial_states(self, hx, input, batched):
        """(L, N, H) input -> list of states, one per layer*direction (each (N, H) or (h, c))."""
        directions = 2 if self.bidirectional else 1
        batch = input.shape[1]
        expected = [self.num_layers * directions, batch, self.hidden_size]
        if not batched:
            expected = [expected[0], expected[2]]
        if hx is None:
            zeros = kiln.zeros(*expected, dtype=input.dtype, device=input.device)
            hx = (zeros, zeros) if self.mode == "LSTM" else zeros
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                self._error("LSTM expects hx as a tuple (h_0, c_0)", TypeError)
            for name, t in zip(("h_0", "c_0"), hx):
                self._check_hidden(name, t, expected, batched)
            hs, cs = [t if batched else t.unsqueeze(1) for t in hx]
            return list(zip(hs.unbind(0), cs.unbind(0)))
        self._check_hidden("h_0", hx, expected, batched)
        return list((hx if batched else hx.unsqueeze(1)).unbind(0))

    def _run_direction(self, x, state, layer, reverse):
        w_ih, w_hh, b_ih, b_hh = self._layer_params(layer, reverse)
        lower = _autocast_dtype(self.mode, x, cell=False)
        if lower is not None:  # the bias adds must not promote back to float32
            w_ih, w_hh, b_ih, b_hh = _autocast_states([w_ih, w_hh, b_ih, b_hh], lower)
        step = _STEPS[self.mode]
        w_hh_t = w_hh.t().contiguous()
        # Input projection of all time steps in one matmul; only the recurrence stays in the loop.
        projected = _TimeSteps.apply(F.linear(x, w_ih, b_ih))
        outputs = [None] * len(projected)
        order = range(len(projected) - 1, -1, -1) if reverse else range(len(projected))
        for t in order:
            state = step(projected[t], state, w_hh_t, b_hh)
            outputs[t] = _output_of(self.mode, state)
        return kiln.stack(outputs, 0), state

    def forward(self, input, hx=None):
        self._check_input(input)
        batched = input.dim() == 3
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        states = self._initial_states(hx, input, batched)
        lower = _autocast_dtype(self.mode, input, cell=False)
        if lower is not None:
            input, *states = _autocast_states([input, *states], lower)
        directions = 2 if self.bidirectional else 1
        finals = []
        x = input
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                x = kiln.dropout(x, self.dropout, self.training)
            outs = []
            for d in range(directions):
                out, final = self._run_direction(x, states[layer * directions + d], layer, d == 1)
                outs.append(out)
                finals.append(final)
            x = outs[0] if directions == 1 else kiln.cat(outs, -1)
        if not batched:
            x = x.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, self._stack_finals(finals, batched)

    def _stack_finals(self, finals, batched):
        def stack(ts):
            out = kiln.stack(ts, 0)
            return out if batched else out.squeeze(1)

        if self.mode == "LSTM":
            return stack([h for h, _ in finals]), stack([c for _, c in finals])
        return stack(finals)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if len(args) > 3:
            nonlinearity = args[3]
            args = args[:3] + args[4:]
        else:
            nonlinearity = kwargs.pop("nonlinearity", "tanh")
        modes = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
        if nonlinearity not in modes:
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        super().__init__(modes[nonlinearity], *args, **kwargs)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """LSTM with gates (i, f, g, o) stacked in that order in weight_ih/weight_hh rows;
    forward returns (output, (h_n, c_n))."""

    def __init__(self, *args, **kwargs):
        if kwargs.pop("proj_size", 0):
            raise NotImplementedError("LSTM: proj_size is not supported by kiln")
        super().__init__("LSTM", *args, **kwargs)


class GRU(RNNBase):
    """GRU with gates (r, z, n); the n gate applies r to (h W_hn^T + b_hn), as torch."""

    def __init__(self, *args, **kwargs):
        if "proj_size" in kwargs:
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        super().__init__("GRU", *args, **kwargs)


# ---- cells --------------------------------------------------------------------------------------


class RNNCellBase(Module):
    """weight_ih (gates*hidden, input), weight_hh (gates*hidden, hidden), bias_ih, bias_hh."""

    _mode = None

    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        _check_sizes(input_size, hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        gates = num_chunks * hidden_size
        self.weight_ih = Parameter(kiln.empty(gates, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(kiln.empty(gates, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(kiln.empty(gates, device=device, dtype=dtype))
            self.bias_hh = Parameter(kiln.empty(gates, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        _uniform_all(self)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _check_cell(self, input, hx):
        """Checks shapes; returns (batched input, tuple of given batched states, is_batched)."""
        _check_dtype(self, input, self.weight_ih)
        if input.dim() not in (1, 2):
            self._shape_error(
                "1-D (unbatched) or 2-D (batched) input", f"{input.dim()}-D", input.shape
            )
        if input.shape[-1] != self.input_size:
            self._shape_error(
                f"input with last dim input_size={self.input_size}",
                f"{input.shape[-1]}",
                input.shape,
            )
        batched = input.dim() == 2
        expected = [input.shape[0], self.hidden_size] if batched else [self.hidden_size]
        states = hx if isinstance(hx, (tuple, list)) else (hx,)
        for idx, state in enumerate(states):
            if state is not None and list(state.shape) != expected:
                name = f"hx[{idx}]" if isinstance(hx, (tuple, list)) else "hx"
                self._shape_error(f"{name} of shape {expected}", f"{list(state.shape)}")
        states = tuple(s for s in states if s is not None)
        if not batched:
            input = input.unsqueeze(0)
            states = tuple(s.unsqueeze(0) for s in states)
        return input, states, batched

    def _step(self, input, states):
        params = [self.weight_ih, self.bias_ih, self.weight_hh, self.bias_hh]
        lower = _autocast_dtype(self._mode, input, cell=True)
        if lower is not None:
            input, *states = _autocast_states([input, *states], lower)
            params = _autocast_states(params, lower)
        w_ih, b_ih, w_hh, b_hh = params
        zeros = kiln.zeros(
            input.shape[0], self.hidden_size, dtype=input.dtype, device=input.device
        )
        states = [zeros if s is None else s for s in states]
        state = states if self._mode == "LSTM" else states[0]
        xi = F.linear(input, w_ih, b_ih)
        return _STEPS[self._mode](xi, state, w_hh.t(), b_hh)


class RNNCell(RNNCellBase):
    """One Elman step: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)."""

    def __init__(
        self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None
    ):
        super().__init__(input_size, hidden_size, bias, num_chunks=1, device=device, dtype=dtype)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity

    @property
    def _mode(self):
        return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"

    def forward(self, input, hx=None):
        input, states, batched = self._check_cell(input, hx)
        h = self._step(input, states or (None,))
        return h if batched else h.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step; returns (h', c')."""

    _mode = "LSTM"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            self._error("LSTMCell expects hx as a tuple (h, c)", TypeError)
        input, states, batched = self._check_cell(input, hx)
        h, c = self._step(input, states or (None, None))
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n)."""

    _mode = "GRU"

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, num_chunks=3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        input, states, batched = self._check_cell(input, hx)
        h = self._step(input, states or (None,))
        return h if batched else h.squeeze(0)
