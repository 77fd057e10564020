"""devtools/package.py's checks of a built zip, on small zips made here (no build needed)."""

import zipfile

import pytest

from devtools import package


def _zip_with_wheels(path, *tags: str):
    with zipfile.ZipFile(path, "w") as archive:
        for number, tag in enumerate(tags):
            archive.writestr(f"dist{number}-1.0.dist-info/WHEEL", f"Wheel-Version: 1.0\nTag: {tag}\n")
        archive.writestr("fxfer/__init__.py", "")
    return path


def test_wheels_lambda_can_load_pass(tmp_path):
    built = _zip_with_wheels(
        tmp_path / "ok.zip",
        "py3-none-any",
        "cp313-cp313-manylinux2014_x86_64",
        "cp313-cp313-manylinux_2_28_x86_64",
        "cp313-cp313-manylinux_2_34_x86_64",
    )
    package.check_platform(built)  # does not raise


@pytest.mark.parametrize(
    "tag",
    [
        "cp313-cp313-manylinux_2_35_x86_64",  # built on a Linux newer than Amazon Linux 2023
        "cp313-cp313-manylinux_2_28_aarch64",  # built on arm64 Linux
        "cp313-cp313-macosx_11_0_arm64",  # built on a Mac
        "cp313-cp313-musllinux_1_2_x86_64",  # built on Alpine
    ],
)
def test_a_wheel_lambda_cannot_load_stops_the_build_naming_it(tmp_path, tag):
    built = _zip_with_wheels(tmp_path / "foreign.zip", "py3-none-any", tag)
    with pytest.raises(SystemExit) as stopped:
        package.check_platform(built)
    assert tag in str(stopped.value)
    assert "docs/deploy.md" in str(stopped.value)


def test_a_package_near_or_over_the_direct_upload_limit_warns_about_rollback():
    mib = 1024 * 1024
    assert package.rollback_warning(40 * mib) == ""
    assert "close to" in package.rollback_warning(47 * mib)
    assert "over" in package.rollback_warning(51 * mib)
    assert "zappa rollback" in package.rollback_warning(51 * mib)
