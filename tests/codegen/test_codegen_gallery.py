"""The person folders of a compiled-in gallery (tinyface.codegen.gallery; named test_codegen_gallery.py
beside tests/device/test_gallery.py, as test modules need unique names): their names follow `--name`'s
one rule (tinyface.protocol.spec.check_name), read as the text their bytes spell in UTF-8 whatever the
locale. (`flash --enroll` itself: tests/cli/test_cli_flash.py.)"""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import env_without_locale as _env, latin1_locale, named_people as _people
from tinyface import errors

ZOE = "Zoë"
ZOE_UTF8 = ZOE.encode("utf-8")  # b"Zo\xc3\xab"


def test_a_folder_name_that_is_no_text_is_one_data_error_showing_its_bytes(tmp_path):
    """Bytes that are UTF-8 in no reading (a Latin-1 ë in this UTF-8 process): was "person folder
    name 'Zo\\udceb' must be 1..15 bytes of UTF-8", a length rule it does not break."""
    from tinyface.codegen.gallery import gallery_names

    people = tmp_path / "people"
    for name in (b"Bob", b"Zo\xeb"):
        os.makedirs(os.path.join(os.fsencode(people), name))
        with open(os.path.join(os.fsencode(people), name, b"1.jpg"), "wb"):
            pass
    with pytest.raises(errors.DataError) as info:
        gallery_names(people)
    assert info.value.one_line() == (f"a person folder's name in {people}: its bytes b'Zo\\xeb' are not valid UTF-8 "
                                     "text (rename the folder in UTF-8)")


def test_a_folder_name_too_long_says_its_length(tmp_path):
    from tinyface.codegen.gallery import gallery_names

    people = tmp_path / "people"
    (people / "Zoë Zoë Zoë Zoë").mkdir(parents=True)  # 19 bytes
    (people / "Zoë Zoë Zoë Zoë" / "1.jpg").write_bytes(b"")
    # --name's wording (one rule, tinyface.protocol.spec.check_name)
    with pytest.raises(errors.DataError,
                       match=r"'Zoë Zoë Zoë Zoë' is 19 bytes in UTF-8; the board stores at most 15"):
        gallery_names(people)
    shutil.rmtree(people / "Zoë Zoë Zoë Zoë")
    (people / ZOE).mkdir()
    (people / ZOE / "1.jpg").write_bytes(b"")
    assert gallery_names(people) == {ZOE: ZOE}


def test_two_folders_that_spell_one_name_are_refused_under_a_latin1_locale(tmp_path):
    """Under a Latin-1 locale a UTF-8 Zoë folder and a Latin-1 one both read as Zoë: two gallery
    entries of one name would be compiled in. Refused, naming both folders' bytes."""
    env = _env(**latin1_locale(tmp_path))
    people = tmp_path / "people"
    for name in (ZOE_UTF8, b"Zo\xeb"):
        os.makedirs(os.path.join(os.fsencode(people), name))
        with open(os.path.join(os.fsencode(people), name, b"1.jpg"), "wb"):
            pass
    code = ("import sys\nfrom tinyface.codegen.gallery import gallery_names\nfrom tinyface.errors import DataError\n"
            "try:\n    gallery_names(sys.argv[1])\nexcept DataError as exc:\n"
            "    print(ascii(exc.one_line()))\n    sys.exit(exc.exit_code)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(people)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == errors.DataError.exit_code, proc.stderr[-2000:]
    assert "are both named 'Zo\\xeb'" in proc.stdout and "b'Zo\\\\xc3\\\\xab'" in proc.stdout, proc.stdout


# A folder's name has `--name`'s one rule (tinyface.protocol.spec.check_name: 1..15 bytes of
# UTF-8, no control character, no leading or trailing space); a folder was checked by the wire's
# byte rule alone, so `Bob ` (a trailing space) or a tab in its name was compiled in.

@pytest.mark.parametrize("folder, broken", [("Bob ", "'Bob ' starts or ends with white space"),
                                            ("Bob\tJr", "'Bob\\tJr' contains a control or unassigned character "
                                                        "('\\t')")])
def test_a_folder_name_that_name_refuses_is_refused(tmp_path, folder, broken):
    """Both are 1..15 bytes of UTF-8 without NUL: gallery_names took them."""
    from tinyface.codegen.gallery import gallery_names

    people = _people(tmp_path / "people", "Ann", folder)
    with pytest.raises(errors.DataError) as info:
        gallery_names(people)
    assert info.value.one_line() == f"person folder name {broken} (rename the folder)"
