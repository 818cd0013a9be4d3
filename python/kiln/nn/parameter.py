"""kiln.nn.Parameter: a Tensor that Modules register as a learnable parameter."""

from kiln import _C


class Parameter(_C.Tensor):
    """A leaf Tensor sharing `data`'s memory, with requires_grad set (True by default).

    Assigning one as a Module attribute registers it, so it shows up in
    parameters() and state_dict().
    """

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            data = _empty()
        super().__init__(data, requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

    __str__ = __repr__

    def __reduce_ex__(self, protocol):
        return (Parameter, (self.data.clone(), self.requires_grad))

    def __deepcopy__(self, memo):
        if id(self) not in memo:
            copy = Parameter(self.data.clone(), self.requires_grad)
            if self.grad is not None:
                copy.grad = self.grad.detach().clone()
            memo[id(self)] = copy
        return memo[id(self)]


def _empty():
    from kiln import empty

    return empty(0)
