"""The engine's Python side: validation, buffers, threads, the FPU mode, dropout streams,
the calls into the compiled kernels (``fastnn.kernels``), and the checked archive that
model files are written in (``archive``). The public faces (``network``/``trainer``,
``sklearn`` and ``io``) call these; nothing here imports a face."""
