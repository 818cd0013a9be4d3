"""Where a module sits in the model, for error messages ("features.3 (Conv2d)").

Note [Module paths]: names are not stored on modules (one module can sit in
several models, or several places of one). Instead Module.__call__ pushes the
module on a per-thread stack; when a layer raises, the outermost module being
called is the root, and the failing module's dotted name is looked up from it.
That costs one list append/pop per call and nothing more until an error.
"""

import threading

_state = threading.local()


def call_stack():
    """This thread's stack of modules being called (Module.__call__ pushes and pops)."""
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def module_path(module):
    """The dotted name of `module` under the outermost module being called ("" if none)."""
    stack = call_stack()
    if not stack or stack[0] is module:
        return ""
    for name, m in stack[0].named_modules():
        if m is module:
            return name
    return ""


def module_description(module):
    path = module_path(module)
    name = type(module).__name__
    return f"{path} ({name})" if path else name
