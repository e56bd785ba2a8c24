"""What the waves tool's tests share: the prod stack file as it reads earlier in the release,
and the stack files of a directory, byte for byte."""

from pathlib import Path

from model.stackfile import ROOT


def copy_text(wave: int, verified: bool = True) -> str:
    """Pulumi.prod.yaml as it reads earlier in the release."""
    text = (ROOT / "Pulumi.prod.yaml").read_text()
    assert "    wave: 4\n" in text and "    verified: true\n" in text
    text = text.replace("    wave: 4\n", f"    wave: {wave}\n")
    return text.replace("    verified: true\n", f"    verified: {str(verified).lower()}\n")


def files_in(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every stack file of `directory`, byte for byte and with its modification time: what a
    command that writes nothing must leave exactly as it was."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.glob("Pulumi*.yaml")}


def copy_of_prod(tmp_path: Path, wave: int, verified: bool = True) -> Path:
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(copy_text(wave, verified))
    return path
