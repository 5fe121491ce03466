"""braze: an ML compiler and inference engine for decoder LLMs."""
from braze.api import LLM, CompletionOutput, RequestOutput
from braze.runtime.sampling import SamplingParams

__version__ = "0.1.0"


def __getattr__(name: str):
    # loaded on first use: braze.backend (torch.compile's backend="braze") imports torch._dynamo,
    # compile_module torch.export
    import importlib
    if name == "backend":
        module = importlib.import_module("braze.backend")
        module.register()
        return module
    if name in ("compile_module", "CompiledModule"):
        return getattr(importlib.import_module("braze.module_compiler"), name)
    raise AttributeError(f"module 'braze' has no attribute {name!r}")


__all__ = ["LLM", "SamplingParams", "RequestOutput", "CompletionOutput", "compile_module", "CompiledModule",
           "__version__"]
