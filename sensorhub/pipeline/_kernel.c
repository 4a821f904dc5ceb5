/*
 * sensorhub.pipeline._kernel: the per-sample loops of one sensor's streaming step, in C.
 *
 * The streaming path (sensorhub/pipeline/spine.py, SensorPipeline.process) spends its time in
 * Python-level loops over 5-15 samples per call: the accelerometer correction, the swivel gate,
 * the estimator's checks that a batch is plain, the up vector from VQF's quaternion, the
 * inclination and the movement meter. This module does those loops with the same arithmetic, in
 * the same order, on C doubles (built with -ffp-contract=off: no fused multiply-add, so every
 * operation rounds as Python's float does). Everything else (VQF itself, the period fit, the
 * general walk for gaps, rate changes and saturation) stays in Python.
 *
 * The pure-Python code is the reference and the fallback when this module is not built; the tests
 * run both and compare (tests/test_kernel.py).
 *
 * No numpy C API: arrays come in through the buffer protocol (float64 / int64, C-contiguous), and
 * outputs are written into arrays the caller allocated.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* Bumped with every change of a signature or of the arithmetic; the Python side refuses a stale
 * build (sensorhub/pipeline/kernel.py, KERNEL_VERSION). */
#define KERNEL_VERSION 2

/* A C-contiguous buffer of `count` 8-byte items of kind 'd' (double) or 'i' (int64). */
static int
get_buffer(PyObject *obj, Py_buffer *view, Py_ssize_t count, char kind, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        PyErr_Clear();
        return 0;
    }
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@') {
        f++;
    }
    int ok = view->itemsize == 8 && view->len == count * 8 && f[1] == '\0' &&
             (kind == 'd' ? f[0] == 'd' : (f[0] == 'l' || f[0] == 'q'));
    if (!ok) {
        PyBuffer_Release(view);
        return 0;
    }
    return 1;
}

static void
release(Py_buffer *views, int n)
{
    for (int i = 0; i < n; i++) {
        PyBuffer_Release(&views[i]);
    }
}

/* Index of the front parameters (one float64 array per sensor, made by kernel.py). */
enum {
    P_ACC_BIAS = 0,   /* 3: accelerometer bias, m/s² */
    P_ACC_SCALE = 3,  /* 3: accelerometer scale */
    P_SEED_BIAS = 6,  /* 3: the estimator's seeded gyro bias, rad/s */
    P_GATE_BIAS = 9,  /* 3: the swivel gate's gyro bias, rad/s */
    P_GATE_ON = 12,   /* 1.0 when the swivel gate is on */
    P_GATE_ALPHA = 13,
    P_GATE_MIN_RATE = 14,
    P_GATE_COS_MAX = 15,
    P_PERIOD = 16,    /* measured sample period, s */
    P_LOW = 17,       /* 1 - rate tolerance */
    P_HIGH = 18,      /* 1 + rate tolerance */
    P_MAX_STEP = 19,  /* longest step without a counter (no limit with one) */
    P_ACC_CLEAR = 20, /* |a|² bound */
    P_GYRO_CLEAR = 21,/* |ω - bias|² bound */
    P_REST_W2 = 22,
    P_REST_LO = 23,
    P_REST_HI = 24,
    P_REST_MIN = 25,
    P_COUNT = 26
};

/*
 * front(t, acc, gyro, seq, last_seq, last_t, last_motion, recent, params, zi, acc_out, gyro_out, rest_out)
 *
 * Writes the corrected accelerometer ((acc - bias) / scale) into acc_out and the gyro after the
 * swivel gate into gyro_out, advancing the gate's low-pass state zi (3,) in place, then checks
 * that every sample is plain (as _StreamEstimator._process_fast does) and fills rest_out.
 *
 * Returns:
 *   None: an argument it cannot take (non-contiguous, wrong dtype or size); nothing written.
 *   (False, gated): outputs and zi written, but some sample needs the general walk.
 *   (True, gated, steps, recent, acc_sq_min, acc_sq_max, last_motion): every sample plain; steps
 *     (list of the m time steps), the new carried rate window (recent + steps)[m:].
 */
static PyObject *
front(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 13) {
        PyErr_SetString(PyExc_TypeError, "front() takes 13 arguments");
        return NULL;
    }
    PyObject *o_t = args[0], *o_acc = args[1], *o_gyro = args[2], *o_seq = args[3];
    PyObject *o_last_seq = args[4], *o_recent = args[7], *o_params = args[8], *o_zi = args[9];
    double last_t = PyFloat_AsDouble(args[5]);
    double last_motion = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (!PyList_Check(o_recent)) {
        PyErr_SetString(PyExc_TypeError, "recent must be a list of floats");
        return NULL;
    }
    Py_ssize_t m = PyObject_Length(o_t);
    if (m < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (m == 0) {
        Py_RETURN_NONE;
    }
    Py_buffer v[9];
    int nv = 0;
    int has_seq = o_seq != Py_None;
    if (!get_buffer(o_t, &v[nv], m, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(o_acc, &v[nv], 3 * m, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(o_gyro, &v[nv], 3 * m, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(o_params, &v[nv], P_COUNT, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(o_zi, &v[nv], 3, 'd', 1)) goto unsuitable;
    nv++;
    if (!get_buffer(args[10], &v[nv], 3 * m, 'd', 1)) goto unsuitable;
    nv++;
    if (!get_buffer(args[11], &v[nv], 3 * m, 'd', 1)) goto unsuitable;
    nv++;
    if (PyObject_GetBuffer(args[12], &v[nv], PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        goto unsuitable;
    }
    if (v[nv].len != m || v[nv].itemsize != 1) {
        nv++;
        goto unsuitable;
    }
    nv++;
    if (has_seq) {
        if (!get_buffer(o_seq, &v[nv], m, 'i', 0)) goto unsuitable;
        nv++;
    }

    const double *t = v[0].buf, *acc = v[1].buf, *gyro = v[2].buf, *P = v[3].buf;
    double *zi = v[4].buf, *acc_out = v[5].buf, *gyro_out = v[6].buf;
    char *rest_out = v[7].buf;
    const long long *seq = has_seq ? (const long long *)v[8].buf : NULL;

    const double period = P[P_PERIOD], low = P[P_LOW], high = P[P_HIGH];
    int plain = 1;
    /* The counter continues without a gap. */
    if (has_seq) {
        if (o_last_seq == Py_None) {
            plain = 0;
        } else {
            long long first = PyLong_AsLongLong(o_last_seq);
            if (first == -1 && PyErr_Occurred()) {
                release(v, nv);
                return NULL;
            }
            for (Py_ssize_t i = 0; i < m && plain; i++) {
                if (seq[i] != first + 1 + i) plain = 0;
            }
        }
    }
    /* Every carried step of the rate window within the tolerance (as the fast path: finite sum,
     * min / period >= low, max / period <= high). */
    Py_ssize_t nrecent = PyList_GET_SIZE(o_recent);
    if (plain) {
        double sum = 0.0, lo = INFINITY, hi = -INFINITY;
        for (Py_ssize_t i = 0; i < nrecent; i++) {
            double s = PyFloat_AsDouble(PyList_GET_ITEM(o_recent, i));
            if (s == -1.0 && PyErr_Occurred()) {
                release(v, nv);
                return NULL;
            }
            sum += s;
            if (s < lo) lo = s;
            if (s > hi) hi = s;
        }
        if (nrecent > 0 && !(isfinite(sum) && lo / period >= low && hi / period <= high)) plain = 0;
    }

    const double abx = P[P_ACC_BIAS], aby = P[P_ACC_BIAS + 1], abz = P[P_ACC_BIAS + 2];
    const double asx = P[P_ACC_SCALE], asy = P[P_ACC_SCALE + 1], asz = P[P_ACC_SCALE + 2];
    const double sbx = P[P_SEED_BIAS], sby = P[P_SEED_BIAS + 1], sbz = P[P_SEED_BIAS + 2];
    const double gbx = P[P_GATE_BIAS], gby = P[P_GATE_BIAS + 1], gbz = P[P_GATE_BIAS + 2];
    const int gate_on = P[P_GATE_ON] != 0.0;
    const double alpha = P[P_GATE_ALPHA], keep = 1.0 - alpha;
    const double min_rate = P[P_GATE_MIN_RATE], cos_max = P[P_GATE_COS_MAX];
    const double max_step = has_seq ? INFINITY : P[P_MAX_STEP], acc_clear = P[P_ACC_CLEAR], gyro_clear = P[P_GYRO_CLEAR];
    const double rest_w2 = P[P_REST_W2], rest_lo = P[P_REST_LO], rest_hi = P[P_REST_HI];
    const double rest_min = P[P_REST_MIN];
    double zx = zi[0], zy = zi[1], zz = zi[2];
    double prev = last_t, a2min = INFINITY, a2max = -INFINITY;
    long gated = 0;
    PyObject *steps = PyList_New(m);
    if (steps == NULL) {
        release(v, nv);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        /* SensorCalibration.correct_acc */
        double ax = (acc[3 * i] - abx) / asx;
        double ay = (acc[3 * i + 1] - aby) / asy;
        double az = (acc[3 * i + 2] - abz) / asz;
        double gx = gyro[3 * i], gy = gyro[3 * i + 1], gz = gyro[3 * i + 2];
        acc_out[3 * i] = ax;
        acc_out[3 * i + 1] = ay;
        acc_out[3 * i + 2] = az;
        if (gate_on) {
            /* SwivelGate._process_scalar: lfilter's DF-II transposed for b = [α], a = [1, α − 1]. */
            double vx = alpha * ax + zx, vy = alpha * ay + zy, vz = alpha * az + zz;
            zx = keep * vx;
            zy = keep * vy;
            zz = keep * vz;
            double wx = gx - gbx, wy = gy - gby, wz = gz - gbz;
            double rate = sqrt(wx * wx + wy * wy + wz * wz);
            if (rate > min_rate) {
                double norm = sqrt(vx * vx + vy * vy + vz * vz);
                double along = (wx * vx + wy * vy + wz * vz) / norm;
                if (fabs(along) > cos_max * rate) {
                    double scale = along / norm;
                    gx = gbx + scale * vx;
                    gy = gby + scale * vy;
                    gz = gbz + scale * vz;
                    gated++;
                }
            }
        }
        gyro_out[3 * i] = gx;
        gyro_out[3 * i + 1] = gy;
        gyro_out[3 * i + 2] = gz;
        if (!plain) {
            continue;
        }
        /* _StreamEstimator._process_fast: written so that NaN fails. */
        double ti = t[i];
        double step = ti - prev;
        double ratio = step / period;
        double a2 = ax * ax + ay * ay + az * az;
        double wx = gx - sbx, wy = gy - sby, wz = gz - sbz;
        double w2 = wx * wx + wy * wy + wz * wz;
        if (!(low <= ratio && ratio <= high && 0.0 < step && step <= max_step && a2 <= acc_clear &&
              w2 <= gyro_clear)) {
            plain = 0;
            continue;
        }
        PyObject *s = PyFloat_FromDouble(step);
        if (s == NULL) {
            Py_DECREF(steps);
            release(v, nv);
            return NULL;
        }
        PyList_SET_ITEM(steps, i, s);
        if (a2 < a2min) a2min = a2;
        if (a2 > a2max) a2max = a2;
        if (w2 < rest_w2 && rest_lo < a2 && a2 < rest_hi) {
            rest_out[i] = ti - last_motion >= rest_min;
        } else {
            if (ti > last_motion) last_motion = ti;
            rest_out[i] = 0;
        }
        prev = ti;
    }
    zi[0] = zx;
    zi[1] = zy;
    zi[2] = zz;
    release(v, nv);
    if (!plain) {
        Py_DECREF(steps);
        return Py_BuildValue("(Ol)", Py_False, gated);
    }
    /* The carried rate window: (recent + steps)[m:]. */
    PyObject *window = PyList_New(nrecent);
    if (window == NULL) {
        Py_DECREF(steps);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nrecent; i++) {
        Py_ssize_t j = i + m;
        PyObject *item = j < nrecent ? PyList_GET_ITEM(o_recent, j) : PyList_GET_ITEM(steps, j - nrecent);
        Py_INCREF(item);
        PyList_SET_ITEM(window, i, item);
    }
    PyObject *result = Py_BuildValue("(OlNNddd)", Py_True, gated, steps, window, a2min, a2max, last_motion);
    return result;

unsuitable:
    release(v, nv);
    Py_RETURN_NONE;
}

/*
 * back(orientation, basis, acc, gyro, mparams, count, y, incl_out, move_out) -> (count, y)
 *
 * orientation: (m, 4) VQF quaternions [w, x, y, z] (sensor → world) or (m, 3) up vectors.
 * basis: (3, 2) inclination basis (calibration.inclination_basis).
 * acc: (m, 3) corrected accelerometer; gyro: (m, 3) raw gyro.
 * mparams: (9,) movement meter [bias x, y, z, 1/rate_ref², 1/acc_ref², alpha, step, 2g, g²].
 * count, y: the meter's sample count and filter state (NaN: none yet).
 * Writes the inclination (deg) into incl_out and the running RMS into move_out.
 * Returns None when an argument is unsuitable (nothing written).
 */
static PyObject *
back(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "back() takes 9 arguments");
        return NULL;
    }
    Py_ssize_t m = PyObject_Length(args[2]);
    if (m <= 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    long long count = PyLong_AsLongLong(args[5]);
    double y = PyFloat_AsDouble(args[6]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer v[7];
    int nv = 0, quat = 1;
    if (!get_buffer(args[0], &v[nv], 4 * m, 'd', 0)) {
        quat = 0;
        if (!get_buffer(args[0], &v[nv], 3 * m, 'd', 0)) goto unsuitable;
    }
    nv++;
    if (!get_buffer(args[1], &v[nv], 6, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(args[2], &v[nv], 3 * m, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(args[3], &v[nv], 3 * m, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(args[4], &v[nv], 9, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(args[7], &v[nv], m, 'd', 1)) goto unsuitable;
    nv++;
    if (!get_buffer(args[8], &v[nv], m, 'd', 1)) goto unsuitable;
    nv++;

    const double *o = v[0].buf, *B = v[1].buf, *acc = v[2].buf, *gyro = v[3].buf, *M = v[4].buf;
    double *incl = v[5].buf, *move = v[6].buf;
    const double rad2deg = 180.0 / M_PI;
    const double bx = M[0], by = M[1], bz = M[2], ws = M[3], as = M[4], a = M[5], keep = 1.0 - M[5];
    const long long step = M[6] >= 1.0 ? (long long)M[6] : 1; /* MovementMeter.step >= 1 */
    const double g = M[7], g2 = M[8];
    /* MovementMeter.process: the first sample of this batch that is used, and the value held
     * before it. */
    long long first = ((-count) % step + step) % step;
    double held = isnan(y) ? NAN : sqrt(y);
    double value = held;
    for (Py_ssize_t i = 0; i < m; i++) {
        double ux, uy, uz;
        if (quat) {
            /* _up_from_quat: the third row of R for [w, x, y, z]. */
            double qw = o[4 * i], qx = o[4 * i + 1], qy = o[4 * i + 2], qz = o[4 * i + 3];
            ux = 2.0 * (qx * qz - qw * qy);
            uy = 2.0 * (qy * qz + qw * qx);
            uz = 1.0 - 2.0 * (qx * qx + qy * qy);
        } else {
            ux = o[3 * i];
            uy = o[3 * i + 1];
            uz = o[3 * i + 2];
        }
        /* inclination_from_basis: atan2 of the up vector's components in the basis. */
        double s0 = ux * B[0] + uy * B[2] + uz * B[4];
        double s1 = ux * B[1] + uy * B[3] + uz * B[5];
        incl[i] = atan2(s0, s1) * rad2deg;
        if (i >= first && (i - first) % step == 0) {
            /* MovementMeter._energy_scalar */
            double ax = acc[3 * i], ay = acc[3 * i + 1], az = acc[3 * i + 2];
            double wx = gyro[3 * i] - bx, wy = gyro[3 * i + 1] - by, wz = gyro[3 * i + 2] - bz;
            double wu = wx * ux + wy * uy + wz * uz;
            double e = (wx * wx + wy * wy + wz * wz - wu * wu) * ws +
                       (ax * ax + ay * ay + az * az - g * (ax * ux + ay * uy + az * uz) + g2) * as;
            if (isfinite(e)) {
                if (e < 0.0) e = 0.0;
                y = a * e + keep * (isnan(y) ? e : y);
            }
            value = isnan(y) ? NAN : sqrt(y);
        }
        move[i] = value;
    }
    release(v, nv);
    if (isnan(y)) {
        return Py_BuildValue("(LO)", count + m, Py_None);
    }
    return Py_BuildValue("(Ld)", count + m, y);

unsuitable:
    release(v, nv);
    Py_RETURN_NONE;
}

/* numpy's binary search for interp: j with x[j] <= v < x[j + 1]; -1 below x[0], n above x[n - 1],
 * n - 1 at x[n - 1] (plain bisection: the index is what matters, not numpy's guess heuristics). */
static Py_ssize_t
bracket(const double *x, Py_ssize_t n, double v)
{
    if (v < x[0]) return -1;
    if (v > x[n - 1]) return n;
    if (v == x[n - 1]) return n - 1;
    Py_ssize_t lo = 0, hi = n - 1; /* x[lo] <= v < x[hi] */
    while (hi - lo > 1) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (x[mid] <= v) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* np.interp(v, x, y, left=NaN, right=NaN) at one point, with numpy's arithmetic. */
static double
interp1(const double *x, const double *y, Py_ssize_t n, Py_ssize_t j, double v)
{
    if (j < 0 || j >= n) return NAN;
    if (j == n - 1 || x[j] == v) return y[j];
    double slope = (y[j + 1] - y[j]) / (x[j + 1] - x[j]);
    double r = slope * (v - x[j]) + y[j];
    if (isnan(r)) {
        r = slope * (v - x[j + 1]) + y[j + 1];
        if (isnan(r) && y[j] == y[j + 1]) r = y[j];
    }
    return r;
}

/*
 * resample(t, inclination, movement, grid, max_gap_s, incl_out, move_out) -> drop
 *
 * _Track.sample and the index of _Track.drop_before in one pass: linear interpolation of the
 * track's inclination (and movement, when not None) at the grid instants, NaN outside the data and
 * where the two bracketing samples are more than max_gap_s apart (unless the instant falls on the
 * earlier one); returns the number of leading samples the track no longer needs (the last sample
 * before grid[-1] is kept). None when an argument is unsuitable (nothing written).
 */
static PyObject *
resample(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "resample() takes 7 arguments");
        return NULL;
    }
    Py_ssize_t n = PyObject_Length(args[0]), g = PyObject_Length(args[3]);
    double max_gap = PyFloat_AsDouble(args[4]);
    if (n < 0 || g < 0 || (max_gap == -1.0 && PyErr_Occurred())) {
        return NULL;
    }
    int has_move = args[2] != Py_None;
    if ((args[6] == Py_None) != !has_move) {
        PyErr_SetString(PyExc_TypeError, "movement and move_out must both be arrays or both None");
        return NULL;
    }
    Py_buffer v[6];
    int nv = 0;
    if (!get_buffer(args[0], &v[nv], n, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(args[1], &v[nv], n, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(args[3], &v[nv], g, 'd', 0)) goto unsuitable;
    nv++;
    if (!get_buffer(args[5], &v[nv], g, 'd', 1)) goto unsuitable;
    nv++;
    if (has_move) {
        if (!get_buffer(args[2], &v[nv], n, 'd', 0)) goto unsuitable;
        nv++;
        if (!get_buffer(args[6], &v[nv], g, 'd', 1)) goto unsuitable;
        nv++;
    }
    const double *t = v[0].buf, *inc = v[1].buf, *grid = v[2].buf;
    double *inc_out = v[3].buf;
    const double *mov = has_move ? v[4].buf : NULL;
    double *mov_out = has_move ? v[5].buf : NULL;
    /* Gaps only matter when some step is longer than max_gap (as the Python: a quick test first). */
    int gaps = 0;
    if (n > 1 && t[n - 1] - t[0] > max_gap) {
        for (Py_ssize_t i = 1; i < n && !gaps; i++) {
            if (t[i] - t[i - 1] > max_gap) gaps = 1;
        }
    }
    for (Py_ssize_t i = 0; i < g; i++) {
        double x = grid[i];
        if (n == 0) {
            inc_out[i] = NAN;
            if (has_move) mov_out[i] = NAN;
            continue;
        }
        Py_ssize_t j = bracket(t, n, x);
        double a = interp1(t, inc, n, j, x);
        double b = has_move ? interp1(t, mov, n, j, x) : 0.0;
        if (gaps) {
            /* np.clip(np.searchsorted(t, x, side="right"), 1, n - 1): the bracketing interval. */
            Py_ssize_t k = j + 1;
            if (k < 1) k = 1;
            if (k > n - 1) k = n - 1;
            if (t[k] - t[k - 1] > max_gap && x != t[k - 1]) {
                a = NAN;
                b = NAN;
            }
        }
        inc_out[i] = a;
        if (has_move) mov_out[i] = b;
    }
    /* drop_before(grid[-1]): np.searchsorted(t, grid[-1], side="left") - 1 */
    Py_ssize_t drop = 0;
    if (g > 0 && n > 0) {
        double last = grid[g - 1];
        Py_ssize_t lo = 0, hi = n; /* first index with t >= last */
        while (lo < hi) {
            Py_ssize_t mid = lo + (hi - lo) / 2;
            if (t[mid] < last) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        drop = lo - 1 > 0 ? lo - 1 : 0;
    }
    release(v, nv);
    return PyLong_FromSsize_t(drop);

unsuitable:
    release(v, nv);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"front", (PyCFunction)(void (*)(void))front, METH_FASTCALL,
     "Accelerometer correction, swivel gate and the estimator's plain-batch checks for one batch."},
    {"back", (PyCFunction)(void (*)(void))back, METH_FASTCALL,
     "Up vector, inclination and movement meter for one batch."},
    {"resample", (PyCFunction)(void (*)(void))resample, METH_FASTCALL,
     "One rig track's inclination and movement at the grid instants, and how many samples it can drop."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernel", "C loops of the streaming per-sensor step (see kernel.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__kernel(void)
{
    PyObject *mod = PyModule_Create(&module);
    if (mod != NULL && PyModule_AddIntConstant(mod, "KERNEL_VERSION", KERNEL_VERSION) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
