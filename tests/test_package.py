"""The package's lazily loaded names stay what they are after their modules are imported."""
import subprocess
import sys


def test_compile_module_stays_a_function_after_its_module_is_imported():
    # importing the implementing module must not replace the package attribute with a module
    code = ("import braze, braze.module_compiler, braze.backend, torch\n"
            "fast = braze.compile_module(torch.nn.ReLU(), torch.randn(3))\n"
            "assert callable(braze.compile_module) and not isinstance(braze.compile_module, type(braze))\n"
            "print(float(fast(torch.tensor([-1.0, 0.5, 2.0])).sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2.5"
