"""`tinyface flash --enroll`: a compiled-in gallery is made of faces only; an image with no
usable face is refused by name, with its own exit code, before anything is written."""

import os
import shutil
import subprocess
import sys

import numpy as np

from tinyface.errors import NoFaceError


def _enroll_dir(lfw_dir, tmp_path):
    root = tmp_path / "people"
    for person, name in (("Aaron_Peirsol", "Aaron"), ("Alejandro_Toledo", "Alejandro")):  # names: <= 15 bytes
        (root / name).mkdir(parents=True)
        for src in sorted((lfw_dir / "images" / person).glob("*.jpg"))[:2]:
            shutil.copy2(src, root / name / src.name)
    return root


def _flash(args, tmp_path):
    env = dict(os.environ, TINYFACE_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, "-m", "tinyface.cli.main", "flash", "--board", "esp32", "--dry-run",
                           "--project-dir", str(tmp_path / "project"), *args], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)


def test_flash_enroll_refuses_images_with_no_face_by_name(lfw_dir, tiny_bundle, tmp_path):
    from PIL import Image

    root = _enroll_dir(lfw_dir, tmp_path)
    Image.fromarray(np.full((120, 120, 3), 140, np.uint8)).save(root / "Aaron" / "wall.png")
    (root / "Alejandro" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    proc = _flash(["--model", str(tiny_bundle.model_path.parent), "--enroll", str(root)], tmp_path)
    assert proc.returncode == NoFaceError.exit_code == 15, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tinyface: error: 2 image(s)"), proc.stderr
    assert "Aaron/wall.png (no face found)" in lines[0]
    assert "Alejandro/broken.jpg (not a readable image)" in lines[0]
    assert not (tmp_path / "project").exists()  # refused before anything was written


def test_flash_enroll_with_faces_only_compiles_the_gallery(lfw_dir, tiny_bundle, tmp_path):
    root = _enroll_dir(lfw_dir, tmp_path)
    proc = _flash(["--model", str(tiny_bundle.model_path.parent), "--enroll", str(root)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    sources = "".join(p.read_text(errors="replace") for p in (tmp_path / "project").rglob("*") if p.is_file()
                      and p.suffix in (".h", ".cc", ".c", ".cpp"))
    assert "Aaron" in sources and "Alejandro" in sources
