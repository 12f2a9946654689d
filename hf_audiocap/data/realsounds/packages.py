"""The Debian packages the real-sounds corpus is cut from, pinned, and how one is fetched.

Each package is pinned to its bookworm version and to the SHA-256 that Debian's ``Packages`` index publishes for it.
Where ``apt-get`` exists it downloads the package (``apt-get download NAME=VERSION``: no root, nothing installed);
elsewhere, or when it fails, or with ``--url``, the same ``.deb`` comes over HTTP from a Debian mirror. Either way the
file is checked against the pinned SHA-256 before anything is read from it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hf_audiocap.data.prepare.downloads import PrepareError, fetch, file_sha256, file_url

DEBIAN_MIRROR = "https://deb.debian.org/debian"


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str
    sha256: str
    size: int  # bytes of the .deb
    pool: str  # its path on a Debian mirror
    licence: str  # the licence of its recordings (debian/copyright; OpenSFX names one per sound)
    holds: str

    @property
    def file_name(self) -> str:  # as in Debian's pool: the version without its epoch
        return f"{self.name}_{self.version.split(':', 1)[-1]}_all.deb"


PACKAGES: tuple[DebianPackage, ...] = (
    DebianPackage(
        "tuxpaint-stamps-default", "2022.06.04-1",
        "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34", 160880444,
        "pool/main/t/tuxpaint-stamps/tuxpaint-stamps-default_2022.06.04-1_all.deb", "GPL-2",
        "Tux Paint's stamps: sound effects of animals, instruments and household objects, each .ogg beside a .txt",
    ),
    DebianPackage(
        "openttd-opensfx", "1.0.3-2", "2898b4677a3caccc4abc08fb4cf83319047b5a04729291deb5c77a8cd713c006", 9895076,
        "pool/main/o/openttd-opensfx/openttd-opensfx_1.0.3-2_all.deb", "CC-BY-SA-3.0 (per sound: CC0, CC-BY-3.0)",
        "OpenTTD's titled sound effects inside opensfx.cat (vehicles, animals, crowds, machines)",
    ),
    DebianPackage(
        "lincity-ng-data", "2.9~git20150314-5", "8f5e85bd42879abdc7099b035d7a3d7468eceb6b93b52a12270c28f3f3c792f9",
        44782216, "pool/main/l/lincity-ng/lincity-ng-data_2.9~git20150314-5_all.deb", "GPL-2+",
        "LinCity-NG's named loops of city, traffic, industry, farm and water",
    ),
    DebianPackage(
        "sonic-pi-samples", "3.2.2~repack-8", "25f2312d2fae005e6ad0f4726b8ed3084e776006a5a132083506e960224ac79d",
        21882696, "pool/main/s/sonic-pi/sonic-pi-samples_3.2.2~repack-8_all.deb", "CC0",
        "Sonic Pi's samples: drums, guitar, piano, bells",
    ),
    DebianPackage(
        "lmms-common", "1.2.2+dfsg1-6", "7d9aa55dd05f11edc57104203ee1c350e3e41f8936ab3741da2bb1158fd46c37", 8263276,
        "pool/main/l/lmms/lmms-common_1.2.2+dfsg1-6_all.deb", "GPL-2+",
        "LMMS's samples: instruments, drum breaks, applause, crowd",
    ),
    DebianPackage(
        "gcompris-qt-data", "3.1-2", "e9cf06ab2105529068df73085784e835d2ff03f870d2a8091f09125d40abac9f", 44196292,
        "pool/main/g/gcompris-qt/gcompris-qt-data_3.1-2_all.deb", "GPL-3+",
        "GCompris's instruments, farm animals and everyday sounds inside Qt .rcc resource archives",
    ),
    DebianPackage(
        "asterisk-core-sounds-en-wav", "1.6.1-1", "2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d",
        18272864, "pool/main/a/asterisk-core-sounds/asterisk-core-sounds-en-wav_1.6.1-1_all.deb", "CC-BY-SA-3.0",
        "Asterisk's spoken English prompts (Allison Smith)",
    ),
)  # fmt: skip

# Recordings from other packages, never drawn from for training, validation or the test scenes: the `independent` split
# (`hf-audiocap prepare realsounds --independent`), each recording alone, tests whether what a model learnt from the
# packages above carries over to recordings made by other people with other microphones and processing.
INDEPENDENT_PACKAGES: tuple[DebianPackage, ...] = (
    DebianPackage(
        "widelands-data", "2:1.1-3", "0e23d645b15bcfb9e3bcae0de9bc1bdfa75a6ecb36b2e449759d6eb0b4bbd8fb", 381353540,
        "pool/main/w/widelands/widelands-data_1.1-3_all.deb", "GPL-2+",
        "Widelands' sounds of farm and wild animals, birds, smiths, sawmills and woodcutters",
    ),
    DebianPackage(
        "wesnoth-1.16-data", "1:1.16.9-1", "1012b964bd412a6770685e3324ae3b61e176caff7846192d1ee63d55cd621e26",
        146229044, "pool/main/w/wesnoth-1.16/wesnoth-1.16-data_1.16.9-1_all.deb", "GPL-2+",
        "Battle for Wesnoth's ambient sounds (birds, campfire, war drums) and effects",
    ),
    DebianPackage(
        "simutrans-pak64", "121.0-1", "46c8420e162941e6d87382b43c508b1dbf48015fcd782f0c4425952ba72745cc", 3033648,
        "pool/main/s/simutrans-pak64/simutrans-pak64_121.0-1_all.deb", "Artistic-1.0",
        "Simutrans' vehicle, industry and nature sounds",
    ),
    DebianPackage(
        "freeciv-data", "3.0.6-1+deb12u1", "278bed022b87408ca9923aa727bef3d6c97875c811723e93ff95dded1b9b76b2",
        20085120, "pool/main/f/freeciv/freeciv-data_3.0.6-1+deb12u1_all.deb", "GPL-2+",
        "Freeciv's standard sound set: explosions, breaking wood and metal",
    ),
    DebianPackage(
        "sound-icons", "0.1-8", "cbb7defa9cab0c86c9151e72c6c8a99a0ed21d244bc4c7cffdde7a0e4d9fa5b3", 472388,
        "pool/main/s/sound-icons/sound-icons_0.1-8_all.deb", "GPL-2+",
        "Brailcom's sound icons: short instrument notes and a canary",
    ),
    DebianPackage(
        "sound-theme-freedesktop", "0.8-2", "135cc4893ba590d428577bc3bf42df756a165c05a2a43f84311ad7db779a70ea",
        383752, "pool/main/s/sound-theme-freedesktop/sound-theme-freedesktop_0.8-2_all.deb",
        "GPL-2+ (voices), CC-BY-SA-3.0 (alarm clock)", "the freedesktop.org sound theme: an alarm clock, a voice",
    ),
    DebianPackage(
        "asterisk-core-sounds-fr-wav", "1.6.1-1", "8d4e1bc32ed5ba7fbda40841ca1825ed20cc6232724a473c90f8bb0e53e6073e",
        18516060, "pool/main/a/asterisk-core-sounds/asterisk-core-sounds-fr-wav_1.6.1-1_all.deb", "CC-BY-SA-3.0",
        "Asterisk's spoken French prompts (June, fr_CA): another speaker and language than the English ones",
    ),
    DebianPackage(
        "heroes-sound-effects", "1.0-6", "e0bf5e5077257b8acc475309906d9cf910c434d2ffa582f3e4c2157dd83c0909", 336648,
        "pool/main/h/heroes-sound-effects/heroes-sound-effects_1.0-6_all.deb", "GPL-2+",
        "Heroes' sound effects: a crowd",
    ),
    DebianPackage(
        "tuxtype-data", "1.8.3-5.1", "62f85e2c6d6820efbaf1d914039b50c070bf5899b1d1d14aea00cebca14f4c78", 9877252,
        "pool/main/t/tuxtype/tuxtype-data_1.8.3-5.1_all.deb", "GPL-2",
        "Tux Typing's sounds: cheering, an explosion",
    ),
    DebianPackage(
        "frozen-bubble-data", "2.212-11", "39cdfd07d9532d1558762cf265a844d09015c4540568573c50f444cc084166e0",
        21929412, "pool/main/f/frozen-bubble/frozen-bubble-data_2.212-11_all.deb", "GPL-2",
        "Frozen Bubble's sounds: applause",
    ),
    DebianPackage(
        "tuxpaint-data", "1:0.9.28-sdl2-1", "f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5",
        7855540, "pool/main/t/tuxpaint/tuxpaint-data_0.9.28-sdl2-1_all.deb", "GPL-2+",
        "Tux Paint's own sounds (not its stamps): a typewriter bell",
    ),
)  # fmt: skip
PACKAGE_BY_NAME = {p.name: p for p in PACKAGES + INDEPENDENT_PACKAGES}


def fetch_package(
    package: DebianPackage,
    downloads: Path,
    *,
    url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 2.0,
) -> bool:
    """Puts ``package``'s verified .deb in ``downloads``; False when it was already there. ``url``: a mirror (base URL,
    ``{name}`` template or folder) that replaces apt-get and the default mirror. Raises :class:`PrepareError` naming
    the package and the reason, leaving no partial .deb behind under its final name."""
    dest = downloads / package.file_name
    if dest.is_file() and file_sha256(dest) == package.sha256:
        return False
    reasons = []
    if url is None and shutil.which("apt-get"):
        try:
            _apt_download(package, dest, timeout)
            return True
        except PrepareError as err:
            reasons.append(str(err))
    source = url or DEBIAN_MIRROR
    try:
        fetch(
            file_url(source, package.pool), dest, None, sha256=package.sha256, progress=progress, timeout=timeout,
            retries=retries, backoff=backoff,
        )  # fmt: skip
    except PrepareError as err:
        reasons.append(str(err))
        raise PrepareError(f"{package.name} {package.version}: cannot fetch it ({'; '.join(reasons)})") from None
    return True


def _apt_download(package: DebianPackage, dest: Path, timeout: float) -> None:
    """``apt-get download`` into a temporary folder beside ``dest``, checked, then moved into place."""
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".apt-") as tmp:
        try:
            done = subprocess.run(
                ["apt-get", "download", "-q", f"{package.name}={package.version}"],
                cwd=tmp, capture_output=True, text=True, timeout=max(timeout, 600),
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as err:
            raise PrepareError(f"apt-get download: {err}") from None
        debs = list(Path(tmp).glob("*.deb"))
        if done.returncode != 0 or len(debs) != 1:
            said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            raise PrepareError(f"apt-get download: {said}")
        got = file_sha256(debs[0])
        if got != package.sha256:
            raise PrepareError(f"apt-get download: sha256 {got}, not the pinned {package.sha256}")
        debs[0].replace(dest)
