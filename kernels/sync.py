"""Two threads meeting in compiled code: atomic flags and a spin wait.

``fastnn.kernels.split`` hands a block of rows to a helper thread once per epoch.
Through Python (semaphores and the GIL) a hand-off took a sixth of the tutorial's
epoch; through a flag in shared memory it takes well under a microsecond
(docs/performance.md, "Numbers behind the code"). A flag
is one int64 of an array, read with acquire and written with release ordering, so
everything a thread wrote before raising a flag is visible to the thread that sees it.
"""
import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import jit

# A waiter polls with the ``pause`` hint (~40 ns) for SPINS polls (tens of us: a block's
# usual head start), then yields its core at each poll for as many more, then sleeps
# SLEEP_US between polls. Pure spinning made a loaded machine (one core busy with
# another process) 30x slower: the spinner held the core its partner needed. Sleeping
# also keeps an idle helper cheap while the caller runs Python between epochs.
SPINS = 2000
SLEEP_US = 50

_sched_yield = types.ExternalFunction("sched_yield", types.int32())
_usleep = types.ExternalFunction("usleep", types.int32(types.uint32))
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


def _flag_pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index])


@intrinsic
def load_acquire(typingctx, flags, i):
    """flags[i] (int64 array), read atomically with acquire ordering."""
    sig = types.int64(flags, i)

    def codegen(context, builder, signature, args):
        ptr = _flag_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@intrinsic
def store_release(typingctx, flags, i, value):
    """flags[i] <- value (int64), written atomically with release ordering."""
    sig = types.void(flags, i, value)

    def codegen(context, builder, signature, args):
        ptr = _flag_pointer(context, builder, signature.args[0], args[0], args[1])
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def compare_exchange(typingctx, flags, i, expected, value):
    """flags[i] <- value if it holds ``expected`` (int64), atomically (acquire and
    release); returns whether it did."""
    sig = types.boolean(flags, i, expected, value)

    def codegen(context, builder, signature, args):
        ptr = _flag_pointer(context, builder, signature.args[0], args[0], args[1])
        old = context.cast(builder, args[2], signature.args[2], types.int64)
        new = context.cast(builder, args[3], signature.args[3], types.int64)
        pair = builder.cmpxchg(ptr, old, new, "acq_rel", "acquire")
        return builder.extract_value(pair, 1)

    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """The x86 ``pause`` hint inside a spin loop (nothing elsewhere)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        if _X86:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


@jit(inline="always")
def back_off(polls):
    """The wait after ``polls`` unanswered polls (see SPINS); returns polls + 1."""
    polls += 1
    if polls <= SPINS:
        cpu_relax()
    elif polls <= 2 * SPINS:
        _sched_yield()
    else:
        _usleep(SLEEP_US)
    return polls


@jit
def wait_for(flags, i, a, b):
    """Spin until flags[i] is a or b; return which value it holds."""
    polls = 0
    while True:
        s = load_acquire(flags, i)
        if s == a or s == b:
            return s
        polls = back_off(polls)
