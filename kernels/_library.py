"""A kernel's compiled code in the cache, loaded without parsing its LLVM bitcode.

Numba's cache keeps each compiled function as machine code plus the LLVM bitcode of the
same library. The bitcode serves one purpose: a later compile of a function that calls
this one links it in. Yet Numba's load parses all of it, only to list the symbols the
machine code defines: most of what loading ``split_run`` (the whole split epoch) took in
a process's first fit (docs/performance.md, "The first process, 2026-12-07").

``KernelCacheImpl`` writes that list of symbols into the cache entry, beside the machine
code and the bitcode; ``LoadedLibrary`` registers the listed symbols and parses the
bitcode only if a compile in the same process links the library. The machine code, and
so every result, is the one Numba's own load runs. Entries are otherwise Numba's
(index, data files, keys), and entries in Numba's own format still load.
"""
import itertools

from llvmlite import binding as ll
from numba.core import compiler
from numba.core.caching import CompileResultCacheImpl
from numba.core.codegen import JITCodeLibrary

KIND = "fastnn-object"  # a library kind beside Numba's 'object' and 'bitcode'

# The CompileResult fields that ``_rebuild`` passes, as numba 0.60-0.68 define them.
_FIELDS = ("typing_context", "target_context", "entry_point", "typing_error", "type_annotation", "signature",
           "objectmode", "lifted", "fndesc", "library", "call_helper", "environment", "metadata", "reload_init",
           "referenced_envs")


def available():
    """Whether this Numba has the internals used here; else Numba's own entries and loads."""
    return (getattr(compiler, "CR_FIELDS", None) is not None and tuple(compiler.CR_FIELDS) == _FIELDS
            and all(hasattr(JITCodeLibrary, name) for name in
                    ("_get_module_for_linking", "_set_compiled_object", "_finalize_final_module")))


class LoadedLibrary(JITCodeLibrary):
    """A library made from a cache entry's machine code; its bitcode (``_bitcode``) is
    parsed when a compile first links the library in."""

    _bitcode = None

    def _get_module_for_linking(self):
        if self._shared_module is None and self._bitcode is not None:
            self._shared_module = ll.parse_bitcode(self._bitcode)
        return super()._get_module_for_linking()


def load(codegen, name, object_code, bitcode, symbols):
    """The library of a cache entry, its machine code loaded in ``codegen``'s engine
    (as Numba's ``CPUCodeLibrary._unserialize`` does, symbols from the entry)."""
    library = LoadedLibrary(codegen, name)
    library.enable_object_caching()
    library._set_compiled_object(object_code)
    library._bitcode = bitcode
    library._finalize_final_module()
    codegen._engine._defined_symbols.update(symbols)
    return library


class KernelCacheImpl(CompileResultCacheImpl):
    """Numba's cache entries of compile results, with the library kept as ``KIND``:
    (machine code, bitcode, the symbols the bitcode defines)."""

    def reduce(self, cres):
        libdata, *rest = super().reduce(cres)
        name, kind, data = libdata
        if kind != "object":
            return (libdata, *rest)
        object_code, bitcode = data
        # The bitcode is the final module's, linkages changed for linking: the same definitions.
        module = cres.library._final_module
        symbols = sorted(value.name for value in itertools.chain(module.functions, module.global_variables)
                         if not value.is_declaration)
        return ((name, KIND, (object_code, bitcode, symbols)), *rest)

    def rebuild(self, target_context, payload):
        (name, kind, data), *rest = payload
        if kind != KIND:
            return super().rebuild(target_context, payload)
        return _rebuild(target_context, name, data, *rest)


def _rebuild(target_context, name, data, fndesc, env, signature, objectmode, lifted, typeann, reload_init,
             referenced_envs):
    """``numba.core.compiler.CompileResult._rebuild``, with the library from ``load``."""
    for init in reload_init or ():
        init()
    library = load(target_context.codegen(), name, *data)
    entry_point = target_context.get_executable(library, fndesc, env)
    cres = compiler.CompileResult(
        typing_context=target_context.typing_context, target_context=target_context, entry_point=entry_point,
        typing_error=None, type_annotation=typeann, signature=signature, objectmode=objectmode, lifted=lifted,
        fndesc=fndesc, library=library, call_helper=None, environment=env, metadata=None, reload_init=reload_init,
        referenced_envs=referenced_envs)
    for referenced in referenced_envs:
        library.codegen.set_env(referenced.env_name, referenced)
    return cres
