"""braze: an ML compiler and inference engine for decoder LLMs."""
from braze.api import LLM, CompletionOutput, RequestOutput
from braze.compile_module import CompiledModule, compile_module
from braze.runtime.sampling import SamplingParams

__version__ = "0.1.0"
__all__ = ["LLM", "SamplingParams", "RequestOutput", "CompletionOutput", "compile_module", "CompiledModule",
           "__version__"]
