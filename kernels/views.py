"""Views of the flat work buffers, built directly rather than by slicing and reshaping.

``buf[a:b].reshape((rows, cols))`` made each view twice (the slice, then the reshape,
through Numba's C helper ``numba_attempt_nocopy_reshape``), and ``A.ravel()`` and
``reshape`` can raise, so every kernel that used them carried an environment naming
``numba.np.arrayobj``: loading the kernels imported that module (22 ms of every process's
first fit). These intrinsics write the view's shape and strides themselves: one array
struct per view, sharing the buffer's memory (and its reference count, like a slice).
``view2d`` checks its bounds in the caller's code, where a slice would have clamped them
silently and the reshape then raised. ``bits`` replaces ``A.view(int_type)`` likewise.
"""
from numba import types
from numba.core import cgutils, errors
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic

from ._jit import jit


def _contiguous_view(context, builder, source_type, source, offset, shape, result_type):
    """The array struct of a C-contiguous view with ``shape`` (LLVM intp values) starting
    ``offset`` items into the array ``source``."""
    src = context.make_array(source_type)(context, builder, source)
    out = context.make_array(result_type)(context, builder)
    strides, nitems = [], context.get_constant(types.intp, 1)
    for extent in reversed(shape):
        strides.insert(0, builder.mul(src.itemsize, nitems))
        nitems = builder.mul(nitems, extent)
    # The fields numba.np.arrayobj.populate_array sets: that module is what the first load
    # no longer imports.
    out.data = builder.gep(src.data, [offset])
    out.shape = cgutils.pack_array(builder, shape)
    out.strides = cgutils.pack_array(builder, strides)
    out.itemsize = src.itemsize
    out.meminfo = src.meminfo
    out.parent = src.parent
    out.nitems = nitems
    return impl_ret_borrowed(context, builder, result_type, out._getvalue())


@intrinsic
def _view2d(typingctx, buf, offset, rows, cols):
    if not (isinstance(buf, types.Array) and buf.ndim == 1 and buf.layout == "C"):
        raise errors.TypingError(f"view2d takes a C-contiguous 1-D array; got {buf}")
    result = types.Array(buf.dtype, 2, "C")

    def codegen(context, builder, signature, args):
        intp = [context.cast(builder, value, ty, types.intp) for value, ty in zip(args[1:], signature.args[1:])]
        return _contiguous_view(context, builder, signature.args[0], args[0], intp[0], intp[1:], result)

    return result(buf, offset, rows, cols), codegen


@intrinsic
def _flat(typingctx, A):
    if not (isinstance(A, types.Array) and A.layout == "C"):
        raise errors.TypingError(f"flat takes a C-contiguous array; got {A}")
    result = types.Array(A.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        return _contiguous_view(context, builder, signature.args[0], args[0], context.get_constant(types.intp, 0),
                                [array.nitems], result)

    return result(A), codegen


@intrinsic
def _reinterpreted(typingctx, A, int_class):
    dtype = getattr(int_class, "instance_type", None)
    if not (isinstance(A, types.Array) and A.ndim == 1 and A.layout == "C" and isinstance(dtype, types.Integer)
            and dtype.bitwidth == A.dtype.bitwidth):
        raise errors.TypingError(f"bits takes a C-contiguous 1-D array and an integer type of its width; "
                                 f"got {A}, {int_class}")
    result = types.Array(dtype, 1, "C")

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        out = context.make_array(result)(context, builder)
        for field in ("shape", "strides", "itemsize", "meminfo", "parent", "nitems"):
            setattr(out, field, getattr(src, field))
        out.data = builder.bitcast(src.data, out.data.type)
        return impl_ret_borrowed(context, builder, result, out._getvalue())

    return result(A, int_class), codegen


@jit(inline="always")
def view2d(buf, offset, rows, cols):
    """A (rows, cols) C-contiguous view of the flat C-contiguous buffer ``buf`` from
    element ``offset`` on; raises IndexError when it would not fit."""
    if offset < 0 or rows < 0 or cols < 0 or offset + rows * cols > buf.size:
        raise IndexError("view2d: the view does not fit in its buffer")
    return _view2d(buf, offset, rows, cols)


@jit(inline="always")
def flat(A):
    """The C-contiguous array ``A`` as one dimension (a view)."""
    return _flat(A)


@jit(inline="always")
def bits(A, int_type):
    """The 1-D C-contiguous float array ``A`` read as integers of ``int_type``, its width
    (a view: the bit patterns, as ``A.view(int_type)`` without NumPy's checks)."""
    return _reinterpreted(A, int_type)
