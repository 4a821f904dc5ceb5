"""Kinematic model of a seated person's pelvis and spine, and the sensors on the skin.

Frames (DESIGN §3):
- World: x forward (chair facing at heading 0), y left, z up; gravity is (0, 0, −g).
- Segment and nominal sensor frame: x up along the spine, z backward out of the skin,
  y = z × x (to the wearer's left). Forward flexion is a positive rotation about +y.

The chain: hip-joint centre → pelvis (heading, lateral lean, sagittal tilt) → sacrum skin point
(sacral sensor) → five lumbar links (L5…L1) sharing the lumbar angles → thoracolumbar sensor at
T12–L1 → nine thoracic links (T12…T3) sharing the thoracic angles → upper-thoracic sensor at
T2–T4. The neutral seated spine is curved (lumbar lordosis, thoracic kyphosis); the DOFs move it
away from that neutral. Each sensor's orientation is its segment's orientation times a fixed
mounting rotation (misalignment on the skin).

Lengths are for an adult of about 1.75 m (lumbar spine ~18 cm, T12–T3 ~24 cm, skin over the
spinous processes 3–6 cm behind the vertebral bodies).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sensorhub.model import FloatArray, Placement
from sensorhub.sim.motion import DOFS

__all__ = ["BodyGeometry", "BodyPose", "evaluate_body", "inclination_rad", "rot_x", "rot_y", "rot_z"]

_D = {name: i for i, name in enumerate(DOFS)}

#: Rotation from segment axes to world axes at neutral with heading 0: x_seg→z_w, y_seg→y_w, z_seg→−x_w.
R0 = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def rot_x(a: FloatArray) -> FloatArray:
    """Rotations about x by angles ``a`` (rad): (N, 3, 3)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(a: FloatArray) -> FloatArray:
    """Rotations about y by angles ``a`` (rad): (N, 3, 3)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(a: FloatArray) -> FloatArray:
    """Rotations about z by angles ``a`` (rad): (N, 3, 3)."""
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


@dataclass(frozen=True, slots=True)
class BodyGeometry:
    """Segment lengths (m), skin offsets (m) and the neutral spinal curve (deg)."""

    #: Sacral skin point (S1–S2) from the hip-joint centre, pelvis frame (up, left, back).
    sacral_point_m: tuple[float, float, float] = (0.10, 0.0, 0.13)
    #: Lumbosacral junction (spine axis) from the hip-joint centre, pelvis frame.
    lumbosacral_m: tuple[float, float, float] = (0.12, 0.0, 0.07)
    lumbar_length_m: float = 0.18
    thoracic_length_m: float = 0.24
    lumbar_links: int = 5
    thoracic_links: int = 9
    thoracolumbar_skin_m: float = 0.05
    upper_thoracic_skin_m: float = 0.06
    #: The hip joints sit in front of the chair's swivel axis, so a swivel moves them on a circle.
    swivel_offset_m: float = 0.10
    #: Neutral seated curve relative to a straight spine: pelvis reclined, lumbar lordosis
    #: reduced in sitting, thoracic kyphosis (typical seated values, e.g. Claus et al. 2009).
    pelvis_neutral_deg: float = -10.0
    lumbar_neutral_deg: float = -12.0
    thoracic_neutral_deg: float = 30.0


@dataclass(frozen=True, slots=True)
class BodyPose:
    """World orientation (segment → world) and position of each placement at N instants."""

    rotation: dict[Placement, FloatArray]  # (N, 3, 3)
    position_m: dict[Placement, FloatArray]  # (N, 3)


def evaluate_body(dofs: FloatArray, geometry: BodyGeometry) -> BodyPose:
    """Segment orientations and sensor positions for DOF values ``dofs`` (N, len(DOFS))."""
    g = geometry
    heading = dofs[:, _D["heading"]]
    Rh = rot_z(heading)
    pelvis_tilt = dofs[:, _D["pelvis_tilt"]] + math.radians(g.pelvis_neutral_deg)
    # Tilt about the left axis, then lean about the forward axis (+ = to the left), then heading.
    R_pelvis = Rh @ rot_x(-dofs[:, _D["pelvis_lateral"]]) @ rot_y(pelvis_tilt) @ R0

    hip = dofs[:, [_D["hip_x"], _D["hip_y"], _D["hip_z"]]] + np.einsum(
        "nij,j->ni", Rh, np.array([g.swivel_offset_m, 0.0, 0.0])
    )
    sacral = hip + np.einsum("nij,j->ni", R_pelvis, np.array(g.sacral_point_m))

    def chain(
        R_start: FloatArray, p_start: FloatArray, prefix: str, links: int, length: float, neutral_deg: float
    ) -> tuple[FloatArray, FloatArray]:
        flex = (dofs[:, _D[f"{prefix}_flex"]] + math.radians(neutral_deg)) / links
        lateral = dofs[:, _D[f"{prefix}_lateral"]] / links
        axial = dofs[:, _D[f"{prefix}_axial"]] / links
        R_link = rot_y(flex) @ rot_z(lateral) @ rot_x(axial)
        step = np.array([length / links, 0.0, 0.0])
        R, p = R_start, p_start
        for _ in range(links):
            R = R @ R_link
            p = p + np.einsum("nij,j->ni", R, step)
        return R, p

    spine0 = hip + np.einsum("nij,j->ni", R_pelvis, np.array(g.lumbosacral_m))
    R_tl, p_tl_axis = chain(R_pelvis, spine0, "lumbar", g.lumbar_links, g.lumbar_length_m, g.lumbar_neutral_deg)
    R_ut, p_ut_axis = chain(R_tl, p_tl_axis, "thoracic", g.thoracic_links, g.thoracic_length_m, g.thoracic_neutral_deg)
    back = np.array([0.0, 0.0, 1.0])
    p_tl = p_tl_axis + g.thoracolumbar_skin_m * np.einsum("nij,j->ni", R_tl, back)
    p_ut = p_ut_axis + g.upper_thoracic_skin_m * np.einsum("nij,j->ni", R_ut, back)
    return BodyPose(
        rotation={Placement.SACRAL: R_pelvis, Placement.THORACOLUMBAR: R_tl, Placement.UPPER_THORACIC: R_ut},
        position_m={Placement.SACRAL: sacral, Placement.THORACOLUMBAR: p_tl, Placement.UPPER_THORACIC: p_ut},
    )


def inclination_rad(R_segment_to_world: FloatArray) -> FloatArray:
    """Sagittal inclination of a segment (rad, + = top forward), from its orientation (N, 3, 3).

    The world's up direction seen in segment axes is ``u = Rᵀ e_z``; the inclination is the
    angle of ``u`` in the segment's own sagittal (x–z) plane, ``atan2(u_z, u_x)``, so it does not
    change when the whole body turns about the vertical (chair swivel). Range (−π, π].
    """
    up = R_segment_to_world[:, 2, :]  # row 2 of R = (Rᵀ e_z)ᵀ
    return np.arctan2(up[:, 2], up[:, 0])
