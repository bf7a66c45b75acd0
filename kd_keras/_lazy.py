"""Names a package loads on first access: the one mechanism for lazy exports.

The top-level `kd_keras` package loads every name this way, so that `import
kd_keras` and `kd-keras --help` start no TensorFlow; `kd_keras.export` and
`kd_keras.distribute` load the modules that need optional dependencies
(tf2onnx, LiteRT, Ray) the same way. Every other package imports its
modules when it is imported.
"""

import importlib
import sys


def lazy_exports(package, attributes=None, modules=None):
    """`(__getattr__, __dir__)` for a package whose names load on first use.

    Args:
        package: the package's `__name__`.
        attributes: dict name -> the module that defines it; the package's
            attribute is that module's object of the same name.
        modules: dict name -> module; the package's attribute is the
            module itself.

    Returns:
        The two module-level functions (PEP 562) to bind in the package.
        Once loaded, a name is stored in the package, so it loads once.

    Example:

    >>> import types
    >>> sys.modules["demo_pkg"] = types.ModuleType("demo_pkg")
    >>> getattr_, dir_ = lazy_exports("demo_pkg", {"sqrt": "math"}, {"jsonlib": "json"})
    >>> getattr_("sqrt")(9.0), getattr_("jsonlib").dumps([1])
    (3.0, '[1]')
    >>> "sqrt" in dir_()
    True
    >>> del sys.modules["demo_pkg"]
    """
    attributes, modules = dict(attributes or {}), dict(modules or {})
    namespace = vars(sys.modules[package])

    def __getattr__(name):
        if name in attributes:
            value = getattr(importlib.import_module(attributes[name]), name)
        elif name in modules:
            value = importlib.import_module(modules[name])
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(attributes) | set(modules))

    return __getattr__, __dir__
