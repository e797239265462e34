"""Subnormal numbers flushed to zero while the kernels run (x86's FTZ and DAZ modes).

An arithmetic operation on a subnormal number (|x| < 1.2e-38 in float32, 2.2e-308 in
float64) takes a microcode assist, ~100x the time of a normal one. A classifier that
has learnt its training set makes them inside the GEMMs of every step: tiny softmax
probabilities become subnormal output deltas (A - Y) / n, and products of small
deltas and activations subnormal partial sums: a converged digits classifier's epochs
became 1.6x slower, flushing the output deltas (``losses.output_delta``) alone won back
half of that, and these modes all of it (docs/performance.md, "Numbers behind the code").

FTZ (flush to zero) makes subnormal results 0, DAZ (denormals are zero) reads subnormal
inputs as 0, including inside BLAS's kernels on the same thread. Values change by less
than the smallest normal number; no result is non-finite that was not, and runs stay
deterministic. The explicit flushes elsewhere (``vmath.flush``: sigmoid and softmax
outputs, output deltas, optimizer moments) stay: the reference mirrors those, and they
hold on machines without these modes.

The modes are a per-thread CPU setting. ``fastnn._core.fpu.flushing_subnormals`` sets them
around each kernel call from Python and always puts the caller's mode back (a kernel
cannot run a ``finally``); on other architectures these functions do nothing.
"""
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

# MXCSR bits: FTZ is bit 15, DAZ bit 6.
FLUSH_BITS = 0x8040
_X86_64 = platform.machine().lower() in ("x86_64", "amd64")
_i32 = ir.IntType(32)
_i8p = ir.IntType(8).as_pointer()


def _mxcsr_call(builder, name, slot):
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [_i8p]), name)
    builder.call(fn, [builder.bitcast(slot, _i8p)])


@intrinsic
def _read_mode(typingctx):
    """The thread's MXCSR register (0 where there is none)."""
    sig = types.uint32()

    def codegen(context, builder, signature, args):
        if not _X86_64:
            return ir.Constant(_i32, 0)
        slot = cgutils.alloca_once(builder, _i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.load(slot)

    return sig, codegen


@intrinsic
def _write_mode(typingctx, mode):
    """MXCSR <- mode (nothing where there is none)."""
    sig = types.void(types.uint32)

    def codegen(context, builder, signature, args):
        if _X86_64:
            _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", cgutils.alloca_once_value(builder, args[0]))
        return context.get_dummy_value()

    return sig, codegen


@jit
def flush_subnormals():
    """Turn FTZ and DAZ on for the calling thread; returns the mode to restore."""
    mode = _read_mode()
    _write_mode(mode | FLUSH_BITS)
    return mode


@jit
def restore_mode(mode):
    """Put back a mode returned by ``flush_subnormals``."""
    _write_mode(mode)


@jit
def current_mode():
    """The calling thread's floating-point mode (MXCSR; 0 where there is none)."""
    return _read_mode()
