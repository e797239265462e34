"""The engine's Python side: validation, buffers, threads, the FPU mode, dropout streams,
and the calls into the compiled kernels (``fastnn.kernels``). The public faces
(``network``/``trainer`` and ``sklearn``) call these; nothing here imports a face."""
