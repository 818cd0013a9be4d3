"""Module.load_state_dict: copying checkpoint entries into a module tree, as PyTorch."""

import itertools
from collections import OrderedDict, namedtuple

from kiln import _C
from kiln.autograd.grad_mode import no_grad
from kiln.nn.parameter import Parameter

Tensor = _C.Tensor


class IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def load_own_entries(
    module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
):
    """Module._load_from_state_dict: this module's parameters and persistent buffers.

    Problems are appended to the lists; `local_metadata["assign_to_params_buffers"]`
    replaces the tensors instead of copying into them."""
    persistent = {
        k: v for k, v in module._buffers.items() if k not in module._non_persistent_buffers_set
    }
    local_state = {
        k: v
        for k, v in itertools.chain(module._parameters.items(), persistent.items())
        if v is not None
    }
    for name, param in local_state.items():
        key = prefix + name
        if key not in state_dict:
            if strict:
                missing_keys.append(key)
            continue
        value = state_dict[key]
        if not isinstance(value, Tensor):
            error_msgs.append(
                f'While copying the parameter named "{key}", expected '
                f"kiln.Tensor from checkpoint but received {type(value)}"
            )
            continue
        if tuple(value.shape) != tuple(param.shape):
            error_msgs.append(
                f"size mismatch for {key}: copying a param with shape {list(value.shape)} "
                f"from checkpoint, the shape in current model is {list(param.shape)}."
            )
            continue
        try:
            if local_metadata.get("assign_to_params_buffers", False):
                new = value
                if isinstance(param, Parameter):
                    new = Parameter(value.detach(), param.requires_grad)
                setattr(module, name, new)
            else:
                with no_grad():
                    param.copy_(value)
        except Exception as ex:  # noqa: BLE001  (reported with the key, as PyTorch does)
            error_msgs.append(
                f'While copying the parameter named "{key}", whose dimensions '
                f"in the model are {list(param.shape)} and whose dimensions in "
                f"the checkpoint are {list(value.shape)}, an exception "
                f"occurred : {ex.args}."
            )
    if strict:
        for key in state_dict:
            if key.startswith(prefix):
                first = key[len(prefix) :].split(".", 1)[0]
                if first not in module._modules and first not in local_state:
                    unexpected_keys.append(key)


def load_state_dict(root, state_dict, strict, assign):
    """Module.load_state_dict: every module loads its own entries (so subclasses can
    override _load_from_state_dict); errors are collected and raised together."""
    if not hasattr(state_dict, "items"):
        raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
    missing, unexpected, errors = [], [], []
    metadata = {"assign_to_params_buffers": assign}
    state_dict = OrderedDict(state_dict)

    def load(module, local, prefix=""):
        module._load_from_state_dict(local, prefix, metadata, True, missing, unexpected, errors)
        for name, child in module._modules.items():
            if child is not None:
                child_prefix = prefix + name + "."
                load(
                    child,
                    {k: v for k, v in local.items() if k.startswith(child_prefix)},
                    child_prefix,
                )

    load(root, state_dict)
    if strict:
        if unexpected:
            errors.insert(
                0,
                "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)
                ),
            )
        if missing:
            errors.insert(
                0,
                "Missing key(s) in state_dict: {}. ".format(", ".join(f'"{k}"' for k in missing)),
            )
    if errors:
        raise RuntimeError(
            "Error(s) in loading state_dict for {}:\n\t{}".format(
                type(root).__name__, "\n\t".join(errors)
            )
        )
    return IncompatibleKeys(missing, unexpected)
