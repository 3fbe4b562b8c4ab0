"""The ``tinyface`` command line: one module per command, each a thin wrapper over an API
function. Modules are imported only when their command runs, so ``--help`` is instant."""
