"""Real face photos taken from registry packages (face_recognition's test images, insightface's samples)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

SDISTS = {  # archive -> (project, version); the source archives carry the test images, the wheels do not
    "face_recognition-1.3.0.tar.gz": ("face_recognition", "1.3.0"),
    "insightface-0.7.3.tar.gz": ("insightface", "0.7.3"),
}
IMAGES = {
    "obama.jpg": "face_recognition-1.3.0/tests/test_images/obama.jpg",
    "obama2.jpg": "face_recognition-1.3.0/tests/test_images/obama2.jpg",
    "biden.jpg": "face_recognition-1.3.0/tests/test_images/biden.jpg",
    "hanks.png": "insightface-0.7.3/insightface/data/images/Tom_Hanks_54745.png",
    "group.jpg": "insightface-0.7.3/insightface/data/images/t1.jpg",
}


@dataclass(frozen=True)
class Person:
    key: str
    student_id: str
    name: str
    enroll: Path  # enrollment photo (one face)
    appear: Path  # the face shown in videos (a different photo where the packages have one)


def fetch_images(cache: Path) -> dict[str, Path]:
    """Downloads the two source archives once (pip download) and extracts the few images used."""
    cache.mkdir(parents=True, exist_ok=True)
    out = {key: cache / key for key in IMAGES}
    if all(p.is_file() for p in out.values()):
        return out
    for archive, (project, version) in SDISTS.items():
        if not (cache / archive).is_file():
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", project,
                 f"{project}=={version}", "-d", str(cache)],
                check=True,
            )
    for archive in SDISTS:
        with tarfile.open(cache / archive) as tar:
            for key, member in IMAGES.items():
                if member.startswith(archive.removesuffix(".tar.gz")):
                    src = tar.extractfile(member)
                    if src is None:
                        raise FileNotFoundError(f"{member} not in {archive}")
                    out[key].write_bytes(src.read())
    return out


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


def build_people(cache: Path) -> list[Person]:
    """Ten distinct people: three single portraits plus the six faces of the group photo, cropped."""
    import face_recognition

    images = fetch_images(cache)
    people_dir = cache / "people"
    people_dir.mkdir(exist_ok=True)
    group = _read(images["group.jpg"])
    rgb = cv2.cvtColor(group, cv2.COLOR_BGR2RGB)
    boxes = sorted(face_recognition.face_locations(rgb, 1, "hog"), key=lambda b: b[3])  # left to right
    if len(boxes) != 6:
        raise RuntimeError(f"expected 6 faces in the group photo, found {len(boxes)}")
    people = []
    for key, sid, name, enroll, appear in (
        ("obama", "S001", "Barack Obama", "obama.jpg", "obama2.jpg"),
        ("biden", "S002", "Joe Biden", "biden.jpg", "biden.jpg"),
        ("hanks", "S003", "Tom Hanks", "hanks.png", "hanks.png"),
    ):
        path = people_dir / f"{key}.png"
        if not path.is_file():
            photo = _read(images[appear])
            found = face_recognition.face_locations(cv2.cvtColor(photo, cv2.COLOR_BGR2RGB), 1, "hog")
            if len(found) != 1:
                raise RuntimeError(f"expected one face in {appear}, found {len(found)}")
            cv2.imwrite(str(path), _crop(photo, found[0], 0.6))
        people.append(Person(key, sid, name, images[enroll], path))
    names = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth"]
    for i, (box, name) in enumerate(zip(boxes, names, strict=True)):
        path = people_dir / f"group{i}.png"
        if not path.is_file():
            cv2.imwrite(str(path), _crop(group, box, 0.6))
        people.append(Person(f"group{i}", f"S{i + 4:03d}", name, path, path))
    return people
