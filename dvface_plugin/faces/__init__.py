"""Face analysis and compositing: detect, track, smooth, align, and paste restored faces back.

Pure numpy/OpenCV/onnxruntime logic, shared by the VapourSynth and Nuke front ends; imports only
`errors`, never the engine, runtime or model.
"""

from .align import CROP_SIZE, alignment_matrix, ffhq_template, invert_affine, warp_to_crop
from .analysis import TrackingSettings, analysis_settings, analyze, frames_digest
from .detector import CenterFaceDetector, Detection, FaceDetector
from .paste import apply_strength, check_strength, face_mask, paste_faces
from .selection import left_out_reasons, parse_faces, select_tracks
from .smoothing import SmoothingSettings
from .trackdata import FaceState, Track, Tracks

__all__ = [
    "CROP_SIZE",
    "CenterFaceDetector",
    "Detection",
    "FaceDetector",
    "FaceState",
    "SmoothingSettings",
    "Track",
    "TrackingSettings",
    "Tracks",
    "alignment_matrix",
    "analysis_settings",
    "analyze",
    "apply_strength",
    "check_strength",
    "face_mask",
    "ffhq_template",
    "frames_digest",
    "invert_affine",
    "left_out_reasons",
    "paste_faces",
    "parse_faces",
    "select_tracks",
    "warp_to_crop",
]
