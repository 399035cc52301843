//! Tiny fixed-size linear algebra on row vectors (no dependency needed for 3x3).

pub type Vec3 = [f64; 3];
pub type Mat3 = [[f64; 3]; 3];

#[inline]
pub fn dot(a: &Vec3, b: &Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

#[inline]
pub fn cross(a: &Vec3, b: &Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

#[inline]
pub fn norm(a: &Vec3) -> f64 {
    dot(a, a).sqrt()
}

pub fn det3(m: &Mat3) -> f64 {
    dot(&m[0], &cross(&m[1], &m[2]))
}

/// Inverse of a 3x3 matrix, `None` if singular.
pub fn inv3(m: &Mat3) -> Option<Mat3> {
    let d = det3(m);
    if d == 0.0 || !d.is_finite() {
        return None;
    }
    // Columns of the inverse are the cross products of rows divided by the determinant.
    let c0 = cross(&m[1], &m[2]);
    let c1 = cross(&m[2], &m[0]);
    let c2 = cross(&m[0], &m[1]);
    let mut inv = [[0.0; 3]; 3];
    for r in 0..3 {
        inv[r][0] = c0[r] / d;
        inv[r][1] = c1[r] / d;
        inv[r][2] = c2[r] / d;
    }
    Some(inv)
}

/// Row vector times matrix: `v @ m` (fractional -> Cartesian with `m = lattice`, Cartesian ->
/// fractional with `m = inverse lattice`).
#[inline]
pub fn frac_to_cart(v: &Vec3, m: &Mat3) -> Vec3 {
    [
        v[0] * m[0][0] + v[1] * m[1][0] + v[2] * m[2][0],
        v[0] * m[0][1] + v[1] * m[1][1] + v[2] * m[2][1],
        v[0] * m[0][2] + v[1] * m[1][2] + v[2] * m[2][2],
    ]
}

/// Distances between opposite faces of the cell (angstrom): `V / |b x c|`, etc.
pub fn face_distances(m: &Mat3) -> Vec3 {
    let v = det3(m).abs();
    [v / norm(&cross(&m[1], &m[2])), v / norm(&cross(&m[2], &m[0])), v / norm(&cross(&m[0], &m[1]))]
}

/// Lattice from parameters (a, b, c in angstrom; angles in degrees) in pymatgen's standard
/// orientation: c along z, a in the xz plane.
pub fn lattice_from_parameters(a: f64, b: f64, c: f64, alpha: f64, beta: f64, gamma: f64) -> Mat3 {
    let (ca, cb, cg) = (alpha.to_radians().cos(), beta.to_radians().cos(), gamma.to_radians().cos());
    let (sa, sb) = (alpha.to_radians().sin(), beta.to_radians().sin());
    let val = ((ca * cb - cg) / (sa * sb)).clamp(-1.0, 1.0);
    let gamma_star = val.acos();
    [[a * sb, 0.0, a * cb], [-b * sa * gamma_star.cos(), b * sa * gamma_star.sin(), b * ca], [0.0, 0.0, c]]
}
