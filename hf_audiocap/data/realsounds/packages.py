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
    def file_name(self) -> str:
        return f"{self.name}_{self.version}_all.deb"


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
PACKAGE_BY_NAME = {p.name: p for p in PACKAGES}


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
