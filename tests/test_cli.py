import subprocess
import sys


def test_help_lists_every_command_without_importing_torch():
    code = ("import sys, contextlib, io\n"
            "from nas.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "print(out.getvalue())\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for command in ("simulate", "profile", "hw", "train-supernet", "eval", "train-subnet",
                    "export-subnet", "build-lut", "search", "export", "quickstart"):
        assert command in proc.stdout
    assert proc.stdout.strip().endswith("NO-TORCH")


def test_version():
    proc = subprocess.run([sys.executable, "-m", "nas.cli", "--version"], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("nas ")
