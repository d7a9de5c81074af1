/* _eplb.c - the CPython extension under the eplb package: handles over libeplb's objects.
 *
 * Each libeplb object (load matrix, placement, collector, transfer plan) is held by a handle type
 * that frees it with the object. Arrays go both ways through the buffer protocol, without copies
 * and without numpy's C API: inputs are any C-contiguous buffer (a numpy array, a CPU torch
 * tensor's .numpy()), outputs are `Array` objects that expose the library's own memory (strided
 * where it is interleaved, read-only) and keep their owner alive; numpy.asarray() wraps them.
 * Errors raise eplb.Error subclasses, one per `enum eplb_err`, carrying eplb_last_error().
 * The package's Python code (eplb/__init__.py) gives these handles their public shape. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eplb.h"

/* ---- errors ---- */

/* Python class name and built-in base of each code's exception. */
typedef struct err_class {
  int code;
  const char *name;
  PyObject **base;
  PyObject *cls;
} err_class;

static PyObject *Error; /* eplb.Error, the base of every class below */

static err_class err_classes[] = {
    {EPLB_EINVAL, "InvalidArgumentError", &PyExc_ValueError, NULL},
    {EPLB_ENOMEM, "OutOfMemoryError", &PyExc_MemoryError, NULL},
    {EPLB_EIO, "IOFailureError", &PyExc_OSError, NULL},
    {EPLB_EFORMAT, "FormatError", &PyExc_ValueError, NULL},
    {EPLB_ERANGE, "RangeError", &PyExc_ValueError, NULL},
    {EPLB_EPARAM, "ParamError", &PyExc_ValueError, NULL},
    {EPLB_EINVALID, "InvalidPlacementError", &PyExc_ValueError, NULL},
    {EPLB_ECOMM, "CommError", &PyExc_RuntimeError, NULL},
    {EPLB_EVERIFY, "VerifyError", &PyExc_RuntimeError, NULL},
    {EPLB_ENOTSUP, "NotSupportedError", &PyExc_NotImplementedError, NULL},
};
#define N_ERR_CLASSES (sizeof err_classes / sizeof *err_classes)

/* Raises `cls` with message `msg` and the attributes code, name and detail; returns NULL. */
static PyObject *raise_with(PyObject *cls, int rc, const char *msg) {
  PyObject *exc = PyObject_CallFunction(cls, "s", msg);
  if (!exc)
    return NULL;
  PyObject *code = PyLong_FromLong(rc);
  PyObject *name = PyUnicode_FromString(eplb_err_name(rc));
  PyObject *det = PyUnicode_FromString(msg);
  if (code && name && det && PyObject_SetAttrString(exc, "code", code) == 0 &&
      PyObject_SetAttrString(exc, "name", name) == 0 &&
      PyObject_SetAttrString(exc, "detail", det) == 0)
    PyErr_SetObject(cls, exc);
  Py_XDECREF(code);
  Py_XDECREF(name);
  Py_XDECREF(det);
  Py_DECREF(exc);
  return NULL;
}

/* Raises the exception of libeplb code `rc` with the thread's detail message; returns NULL. */
static PyObject *raise_eplb(int rc) {
  PyObject *cls = Error;
  for (size_t i = 0; i < N_ERR_CLASSES; i++)
    if (err_classes[i].code == rc)
      cls = err_classes[i].cls;
  const char *detail = eplb_last_error();
  return raise_with(cls, rc, detail && *detail ? detail : eplb_strerror(rc));
}

/* Raises eplb.InvalidArgumentError (EPLB_EINVAL) with a message of our own; returns NULL. */
static PyObject *raise_einval(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  PyOS_vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return raise_with(err_classes[0].cls, EPLB_EINVAL, msg);
}

/* ---- Array: a read-only view of memory owned by a handle (or by the Array itself) ---- */

#define ARRAY_MAX_DIM 3

typedef struct {
  PyObject_HEAD
  PyObject *owner; /* keeps the memory alive; NULL when the Array owns `data` (freed with it) */
  void *data;
  char format[4];  /* struct-module format of one item: "i", "q", "d", "B", "Q" */
  Py_ssize_t itemsize;
  int ndim;
  Py_ssize_t shape[ARRAY_MAX_DIM];
  Py_ssize_t strides[ARRAY_MAX_DIM];
} ArrayObject;

static PyTypeObject ArrayType;

/* Makes a view of `data` with the given shape; strides NULL means C-contiguous. `owner` is
 * referenced; NULL makes the Array own (and free) `data`. */
static PyObject *array_new(PyObject *owner, void *data, const char *format, Py_ssize_t itemsize,
                           int ndim, const Py_ssize_t *shape, const Py_ssize_t *strides) {
  ArrayObject *a = PyObject_New(ArrayObject, &ArrayType);
  if (!a) {
    if (!owner)
      free(data);
    return NULL;
  }
  Py_XINCREF(owner);
  a->owner = owner;
  a->data = data;
  snprintf(a->format, sizeof a->format, "%s", format);
  a->itemsize = itemsize;
  a->ndim = ndim;
  Py_ssize_t step = itemsize;
  for (int d = ndim - 1; d >= 0; d--) {
    a->shape[d] = shape[d];
    a->strides[d] = strides ? strides[d] : step;
    step *= shape[d];
  }
  return (PyObject *)a;
}

static void array_dealloc(ArrayObject *a) {
  if (a->owner)
    Py_DECREF(a->owner);
  else
    free(a->data);
  PyObject_Free(a);
}

static int array_getbuffer(ArrayObject *a, Py_buffer *view, int flags) {
  if (flags & PyBUF_WRITABLE) {
    PyErr_SetString(PyExc_BufferError, "eplb arrays are read-only");
    return -1;
  }
  int contiguous = 1;
  Py_ssize_t step = a->itemsize, len = a->itemsize;
  for (int d = a->ndim - 1; d >= 0; d--) {
    contiguous &= a->shape[d] <= 1 || a->strides[d] == step;
    step *= a->shape[d];
    len *= a->shape[d];
  }
  int wants_contiguous = (flags & PyBUF_C_CONTIGUOUS) == PyBUF_C_CONTIGUOUS ||
                         (flags & PyBUF_F_CONTIGUOUS) == PyBUF_F_CONTIGUOUS ||
                         (flags & PyBUF_ANY_CONTIGUOUS) == PyBUF_ANY_CONTIGUOUS;
  if (!contiguous && (wants_contiguous || (flags & PyBUF_STRIDES) != PyBUF_STRIDES)) {
    PyErr_SetString(PyExc_BufferError, "this eplb array is strided (numpy.asarray reads it)");
    return -1;
  }
  view->buf = a->data;
  view->obj = (PyObject *)a;
  Py_INCREF(a);
  view->len = len;
  view->readonly = 1;
  view->itemsize = a->itemsize;
  view->format = (flags & PyBUF_FORMAT) ? a->format : NULL;
  view->ndim = a->ndim;
  view->shape = (flags & PyBUF_ND) == PyBUF_ND ? a->shape : NULL;
  view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? a->strides : NULL;
  view->suboffsets = NULL;
  view->internal = NULL;
  return 0;
}

static PyBufferProcs array_as_buffer = {(getbufferproc)array_getbuffer, NULL};

static PyObject *array_shape(ArrayObject *a, void *closure) {
  (void)closure;
  PyObject *t = PyTuple_New(a->ndim);
  for (int d = 0; t && d < a->ndim; d++)
    PyTuple_SET_ITEM(t, d, PyLong_FromSsize_t(a->shape[d]));
  return t;
}

static PyGetSetDef array_getset[] = {
    {"shape", (getter)array_shape, NULL, "the array's shape", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ArrayType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eplb._eplb.Array",
    .tp_basicsize = sizeof(ArrayObject),
    .tp_dealloc = (destructor)array_dealloc,
    .tp_as_buffer = &array_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A read-only view of memory held by an eplb object (use numpy.asarray).",
    .tp_getset = array_getset,
};

/* ---- reading buffers ---- */

/* PyObject_GetBuffer, also for CPU torch tensors (which export no buffer: their zero-copy
 * .numpy() view does). @return 0, or -1 with the Python error cleared. */
static int get_buffer(PyObject *obj, Py_buffer *v, int flags) {
  if (PyObject_GetBuffer(obj, v, flags) == 0)
    return 0;
  PyErr_Clear();
  if (!PyObject_HasAttrString(obj, "numpy"))
    return -1;
  PyObject *arr = PyObject_CallMethod(obj, "numpy", NULL);
  int rc = arr ? PyObject_GetBuffer(arr, v, flags) : -1; /* the view keeps arr alive */
  Py_XDECREF(arr);
  if (rc != 0)
    PyErr_Clear();
  return rc;
}

/* Kinds of numbers an input buffer may hold. */
enum num_kind { NUM_INT, NUM_UINT, NUM_FLOAT };

/* Classifies a buffer's item format ("<q", "=i", "d", ...): native or little-endian only.
 * @return 0 or -1 (not a plain number). */
static int format_kind(const Py_buffer *v, enum num_kind *kind) {
  const char *f = v->format ? v->format : "B";
  if (*f == '@' || *f == '=' || *f == '<')
    f++;
  if (f[0] == 0 || f[1] != 0)
    return -1;
  if (strchr("bhilq", *f))
    *kind = NUM_INT;
  else if (strchr("BHILQ?", *f))
    *kind = NUM_UINT;
  else if (strchr("fd", *f))
    *kind = NUM_FLOAT;
  else
    return -1;
  return 0;
}

/* Reads item i of a C-contiguous buffer as a double (exact for integers below 2^53) and, when
 * the buffer holds integers, as an int64 in *iv (-1 when an unsigned value passes INT64_MAX). */
static double item_at(const Py_buffer *v, enum num_kind kind, Py_ssize_t i, int64_t *iv) {
  const char *p = (const char *)v->buf + i * v->itemsize;
  if (kind == NUM_FLOAT) {
    double d = v->itemsize == 4 ? (double)*(const float *)p : *(const double *)p;
    *iv = 0;
    return d;
  }
  if (kind == NUM_INT) {
    int64_t x = v->itemsize == 1   ? *(const int8_t *)p
                : v->itemsize == 2 ? *(const int16_t *)p
                : v->itemsize == 4 ? *(const int32_t *)p
                                   : *(const int64_t *)p;
    *iv = x;
    return (double)x;
  }
  uint64_t u = v->itemsize == 1   ? *(const uint8_t *)p
               : v->itemsize == 2 ? *(const uint16_t *)p
               : v->itemsize == 4 ? *(const uint32_t *)p
                                  : *(const uint64_t *)p;
  *iv = u > (uint64_t)INT64_MAX ? -1 : (int64_t)u;
  return (double)u;
}

/* Gets a C-contiguous buffer of numbers with `ndim` dimensions (0: any) from obj.
 * @return 0 or -1 with a Python error naming `what`. */
static int get_numbers(PyObject *obj, Py_buffer *v, int ndim, const char *what,
                       enum num_kind *kind) {
  if (get_buffer(obj, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0) {
    raise_einval("%s: expected a C-contiguous array of numbers (numpy array or CPU tensor), "
                 "got %s",
                 what, Py_TYPE(obj)->tp_name);
    return -1;
  }
  if (format_kind(v, kind) != 0) {
    raise_einval("%s: unsupported item format '%s'", what, v->format ? v->format : "?");
    PyBuffer_Release(v);
    return -1;
  }
  if (ndim && v->ndim != ndim) {
    raise_einval("%s: expected %d dimensions, got %d", what, ndim, v->ndim);
    PyBuffer_Release(v);
    return -1;
  }
  return 0;
}

/* ---- handles ---- */

typedef struct {
  PyObject_HEAD
  eplb_loads *p;
} LoadsObject;

typedef struct {
  PyObject_HEAD
  eplb_placement *p;
} PlacementObject;

typedef struct {
  PyObject_HEAD
  eplb_collector *c;
} CollectorObject;

typedef struct {
  PyObject_HEAD
  eplb_transfer *t;
} TransferObject;

static PyTypeObject LoadsType, PlacementType, CollectorType, TransferType;

/* Wraps an eplb_loads (owned from now on), or frees it and returns NULL on failure. */
static PyObject *wrap_loads(eplb_loads *p) {
  LoadsObject *o = PyObject_New(LoadsObject, &LoadsType);
  if (!o) {
    eplb_loads_free(p);
    return NULL;
  }
  o->p = p;
  return (PyObject *)o;
}

/* Wraps an eplb_placement (owned from now on), or frees it and returns NULL on failure. */
static PyObject *wrap_placement(eplb_placement *p) {
  PlacementObject *o = PyObject_New(PlacementObject, &PlacementType);
  if (!o) {
    eplb_placement_free(p);
    return NULL;
  }
  o->p = p;
  return (PyObject *)o;
}

static void loads_dealloc(LoadsObject *o) {
  eplb_loads_free(o->p);
  PyObject_Free(o);
}

static void placement_dealloc(PlacementObject *o) {
  eplb_placement_free(o->p);
  PyObject_Free(o);
}

/* ---- loads ---- */

/* _eplb.loads_from_array(values, layer_ids=None): a load matrix from an L x E array of
 * non-negative finite numbers; integer arrays (or floats that are all whole) keep exact counts. */
static PyObject *py_loads_from_array(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"values", "layer_ids", NULL};
  PyObject *values, *ids_obj = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O", kwlist, &values, &ids_obj))
    return NULL;
  Py_buffer v, ids = {0};
  enum num_kind kind, ids_kind;
  if (get_numbers(values, &v, 2, "values", &kind) != 0)
    return NULL;
  eplb_loads *p = NULL;
  PyObject *res = NULL;
  Py_ssize_t L = v.shape[0], E = v.shape[1];
  if (L < 1 || E < 1 || L > INT32_MAX || E > INT32_MAX) {
    raise_einval("values: shape [%zd, %zd] needs at least one layer and one expert", L, E);
    goto done;
  }
  if (ids_obj != Py_None) {
    if (get_numbers(ids_obj, &ids, 1, "layer_ids", &ids_kind) != 0)
      goto done;
    if (ids.shape[0] != L || ids_kind == NUM_FLOAT) {
      raise_einval("layer_ids: expected %zd integers (one per row of values), got %zd %s", L,
                   ids.shape[0], ids_kind == NUM_FLOAT ? "floats" : "values");
      goto done;
    }
  }
  int rc = eplb_loads_create((int32_t)L, (int32_t)E, &p);
  if (rc != 0) {
    raise_eplb(rc);
    goto done;
  }
  int exact = 1;
  for (Py_ssize_t i = 0; i < L * E; i++) {
    int64_t iv;
    double d = item_at(&v, kind, i, &iv);
    if (!isfinite(d) || d < 0 || (kind != NUM_FLOAT && iv < 0)) {
      raise_einval("values[%zd][%zd]: %g is not a finite non-negative count", i / E, i % E, d);
      goto done;
    }
    p->load[i] = d;
    if (kind == NUM_FLOAT) {
      exact &= d == floor(d) && d < 9007199254740992.0; /* 2^53: every whole double below is exact */
      iv = exact ? (int64_t)d : 0;
    }
    p->count[i] = iv;
  }
  if (!exact) {
    free(p->count);
    p->count = NULL;
  }
  for (Py_ssize_t l = 0; ids.obj && l < L; l++) {
    int64_t iv;
    double d = item_at(&ids, ids_kind, l, &iv);
    if (d < 0 || iv < 0 || (l > 0 && iv <= p->layer_ids[l - 1])) {
      raise_einval("layer_ids[%zd]: %g: ids must be non-negative and strictly ascending", l, d);
      goto done;
    }
    p->layer_ids[l] = iv;
  }
  res = wrap_loads(p);
  p = NULL;
done:
  eplb_loads_free(p);
  PyBuffer_Release(&v);
  if (ids.obj)
    PyBuffer_Release(&ids);
  return res;
}

/* _eplb.loads_read(paths, num_experts=0): reads one counts file, a folder (every *.json in it,
 * summed), or a list of files (summed). */
static PyObject *py_loads_read(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"path", "num_experts", "folder", NULL};
  PyObject *path;
  long long num_experts = 0;
  int folder = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O|Lp", kwlist, &path, &num_experts, &folder))
    return NULL;
  eplb_loads *p = NULL;
  int rc;
  if (PyList_Check(path) || PyTuple_Check(path)) {
    PyObject *seq = PySequence_Fast(path, "paths");
    if (!seq)
      return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **paths = PyMem_Calloc((size_t)n + 1, sizeof *paths);
    PyObject **bytes = PyMem_Calloc((size_t)n + 1, sizeof *bytes);
    rc = 0;
    if (!paths || !bytes) {
      PyErr_NoMemory();
      rc = 1;
    }
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
      if (!PyUnicode_FSConverter(PySequence_Fast_GET_ITEM(seq, i), &bytes[i]))
        rc = 1;
      else
        paths[i] = PyBytes_AS_STRING(bytes[i]);
    }
    if (rc == 0) {
      Py_BEGIN_ALLOW_THREADS
      rc = eplb_loads_read_files(paths, (size_t)n, num_experts, &p);
      Py_END_ALLOW_THREADS
    }
    for (Py_ssize_t i = 0; bytes && i < n; i++)
      Py_XDECREF(bytes[i]);
    PyMem_Free(paths);
    PyMem_Free(bytes);
    Py_DECREF(seq);
    if (rc == 1)
      return NULL;
  } else {
    PyObject *b;
    if (!PyUnicode_FSConverter(path, &b))
      return NULL;
    const char *s = PyBytes_AS_STRING(b);
    Py_BEGIN_ALLOW_THREADS
    rc = folder ? eplb_loads_read_folder(s, num_experts, &p)
                : eplb_loads_read_file(s, num_experts, &p);
    Py_END_ALLOW_THREADS
    Py_DECREF(b);
  }
  return rc ? raise_eplb(rc) : wrap_loads(p);
}

/* _eplb.loads_parse(text, name="<string>", num_experts=0): parses a JSON document of counts. */
static PyObject *py_loads_parse(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"text", "name", "num_experts", NULL};
  const char *text, *name = "<string>";
  Py_ssize_t len;
  long long num_experts = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s#|sL", kwlist, &text, &len, &name, &num_experts))
    return NULL;
  eplb_loads *p = NULL;
  int rc = eplb_loads_parse(text, (size_t)len, name, num_experts, &p);
  return rc ? raise_eplb(rc) : wrap_loads(p);
}

static PyObject *loads_write(LoadsObject *o, PyObject *arg) {
  PyObject *b;
  if (!PyUnicode_FSConverter(arg, &b))
    return NULL;
  int rc;
  const char *s = PyBytes_AS_STRING(b);
  Py_BEGIN_ALLOW_THREADS
  rc = eplb_loads_write(o->p, s);
  Py_END_ALLOW_THREADS
  Py_DECREF(b);
  return rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
}

static PyObject *loads_get(LoadsObject *o, void *closure) {
  const char *what = closure;
  eplb_loads *p = o->p;
  Py_ssize_t shape[2] = {p->num_layers, p->num_experts};
  if (!strcmp(what, "num_layers"))
    return PyLong_FromLong(p->num_layers);
  if (!strcmp(what, "num_experts"))
    return PyLong_FromLong(p->num_experts);
  if (!strcmp(what, "layer_ids"))
    return array_new((PyObject *)o, p->layer_ids, "q", 8, 1, shape, NULL);
  if (!strcmp(what, "load"))
    return array_new((PyObject *)o, p->load, "d", 8, 2, shape, NULL);
  if (!p->count)
    Py_RETURN_NONE;
  return array_new((PyObject *)o, p->count, "q", 8, 2, shape, NULL);
}

static PyMethodDef loads_methods[] = {
    {"write", (PyCFunction)loads_write, METH_O, "write(path): the seed format, atomically"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef loads_getset[] = {
    {"num_layers", (getter)loads_get, NULL, NULL, "num_layers"},
    {"num_experts", (getter)loads_get, NULL, NULL, "num_experts"},
    {"layer_ids", (getter)loads_get, NULL, NULL, "layer_ids"},
    {"load", (getter)loads_get, NULL, NULL, "load"},
    {"count", (getter)loads_get, NULL, NULL, "count"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LoadsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eplb._eplb.LoadsHandle",
    .tp_basicsize = sizeof(LoadsObject),
    .tp_dealloc = (destructor)loads_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An eplb_loads (load matrix).",
    .tp_methods = loads_methods,
    .tp_getset = loads_getset,
};

/* ---- placements ---- */

/* _eplb.placement_read(path, num_experts=0). */
static PyObject *py_placement_read(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"path", "num_experts", NULL};
  PyObject *b;
  long long num_experts = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|L", kwlist, PyUnicode_FSConverter, &b,
                                   &num_experts))
    return NULL;
  eplb_placement *p = NULL;
  int rc;
  const char *s = PyBytes_AS_STRING(b);
  Py_BEGIN_ALLOW_THREADS
  rc = eplb_placement_read(s, num_experts, &p);
  Py_END_ALLOW_THREADS
  Py_DECREF(b);
  return rc ? raise_eplb(rc) : wrap_placement(p);
}

/* _eplb.placement_initial(num_layers, num_experts, num_gpus, k). */
static PyObject *py_placement_initial(PyObject *self, PyObject *args) {
  (void)self;
  int L, E, G, k;
  if (!PyArg_ParseTuple(args, "iiii", &L, &E, &G, &k))
    return NULL;
  eplb_placement *p = NULL;
  int rc = eplb_placement_initial(L, E, G, k, &p);
  return rc ? raise_eplb(rc) : wrap_placement(p);
}

/* _eplb.placement_from_array(phy2log, num_gpus, num_experts=0, layer_ids=None): a placement
 * from its L x R slot table; the index is built and every invariant checked (duplicates on a
 * device allowed only with allow_duplicates). */
static PyObject *py_placement_from_array(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"phy2log", "num_gpus", "num_experts", "layer_ids", "allow_duplicates",
                           NULL};
  PyObject *arr, *ids_obj = Py_None;
  int G, E = 0, allow_dup = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|iOp", kwlist, &arr, &G, &E, &ids_obj,
                                   &allow_dup))
    return NULL;
  Py_buffer v, ids = {0};
  enum num_kind kind, ids_kind;
  if (get_numbers(arr, &v, 2, "phy2log", &kind) != 0)
    return NULL;
  PyObject *res = NULL;
  eplb_placement *p = NULL;
  Py_ssize_t L = v.shape[0], R = v.shape[1];
  int32_t maxe = -1;
  if (kind == NUM_FLOAT || L < 1 || R < 1 || L > INT32_MAX || R > INT32_MAX) {
    raise_einval("phy2log: expected a non-empty 2-D integer array, got shape [%zd, %zd]", L, R);
    goto done;
  }
  for (Py_ssize_t i = 0; i < L * R; i++) {
    int64_t iv;
    item_at(&v, kind, i, &iv);
    if (iv < 0 || iv >= (E > 0 ? E : INT32_MAX)) {
      raise_einval("phy2log[%zd][%zd]: expert %lld outside 0..%d", i / R, i % R, (long long)iv,
                   (E > 0 ? E : INT32_MAX) - 1);
      goto done;
    }
    maxe = iv > maxe ? (int32_t)iv : maxe;
  }
  if (ids_obj != Py_None) {
    if (get_numbers(ids_obj, &ids, 1, "layer_ids", &ids_kind) != 0)
      goto done;
    if (ids.shape[0] != L || ids_kind == NUM_FLOAT) {
      raise_einval("layer_ids: expected %zd integers (one per row of phy2log)", L);
      goto done;
    }
  }
  int rc = eplb_placement_create((int32_t)L, E > 0 ? E : maxe + 1, (int32_t)R, G, &p);
  if (rc != 0) {
    raise_eplb(rc);
    goto done;
  }
  for (Py_ssize_t i = 0; i < L * R; i++) {
    int64_t iv;
    item_at(&v, kind, i, &iv);
    p->phy2log[i] = (int32_t)iv;
  }
  for (Py_ssize_t l = 0; ids.obj && l < L; l++) {
    int64_t iv;
    item_at(&ids, ids_kind, l, &iv);
    if (iv < 0 || (l > 0 && iv <= p->layer_ids[l - 1])) {
      raise_einval("layer_ids[%zd]: ids must be non-negative and strictly ascending", l);
      goto done;
    }
    p->layer_ids[l] = iv;
  }
  if ((rc = eplb_placement_build_index(p)) != 0 || (rc = eplb_placement_validate(p, allow_dup))) {
    raise_eplb(rc);
    goto done;
  }
  res = wrap_placement(p);
  p = NULL;
done:
  eplb_placement_free(p);
  PyBuffer_Release(&v);
  if (ids.obj)
    PyBuffer_Release(&ids);
  return res;
}

static PyObject *placement_write(PlacementObject *o, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"path", "full", NULL};
  PyObject *b;
  int full = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|p", kwlist, PyUnicode_FSConverter, &b, &full))
    return NULL;
  int rc;
  const char *s = PyBytes_AS_STRING(b);
  Py_BEGIN_ALLOW_THREADS
  rc = eplb_placement_write(o->p, s, full ? EPLB_MAP_FULL : EPLB_MAP_EXPERT_MAP);
  Py_END_ALLOW_THREADS
  Py_DECREF(b);
  return rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
}

static PyObject *placement_validate(PlacementObject *o, PyObject *args) {
  int allow_dup = 0;
  if (!PyArg_ParseTuple(args, "|p", &allow_dup))
    return NULL;
  int rc = eplb_placement_validate(o->p, allow_dup);
  return rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
}

static PyObject *placement_duplicates(PlacementObject *o, PyObject *unused) {
  (void)unused;
  return PyLong_FromLongLong(eplb_placement_duplicates(o->p));
}

static PyObject *placement_clone(PlacementObject *o, PyObject *unused) {
  (void)unused;
  eplb_placement *p = NULL;
  int rc = eplb_placement_clone(o->p, &p);
  return rc ? raise_eplb(rc) : wrap_placement(p);
}

static PyObject *placement_get(PlacementObject *o, void *closure) {
  const char *what = closure;
  eplb_placement *p = o->p;
  if (!strcmp(what, "num_layers"))
    return PyLong_FromLong(p->num_layers);
  if (!strcmp(what, "num_experts"))
    return PyLong_FromLong(p->num_experts);
  if (!strcmp(what, "num_slots"))
    return PyLong_FromLong(p->num_slots);
  if (!strcmp(what, "num_gpus"))
    return PyLong_FromLong(p->num_gpus);
  if (!strcmp(what, "max_replicas"))
    return PyLong_FromLong(p->max_replicas);
  if (!strcmp(what, "layer_ids")) {
    Py_ssize_t shape[1] = {p->num_layers};
    return array_new((PyObject *)o, p->layer_ids, "q", 8, 1, shape, NULL);
  }
  if (!strcmp(what, "phy2log")) {
    Py_ssize_t shape[2] = {p->num_layers, p->num_slots};
    return array_new((PyObject *)o, p->phy2log, "i", 4, 2, shape, NULL);
  }
  if (!strcmp(what, "logcnt")) {
    Py_ssize_t shape[2] = {p->num_layers, p->num_experts};
    return array_new((PyObject *)o, p->logcnt, "i", 4, 2, shape, NULL);
  }
  Py_ssize_t shape[3] = {p->num_layers, p->num_experts, p->max_replicas};
  return array_new((PyObject *)o, p->log2phy, "i", 4, 3, shape, NULL);
}

static PyMethodDef placement_methods[] = {
    {"write", (PyCFunction)(void (*)(void))placement_write, METH_VARARGS | METH_KEYWORDS,
     "write(path, full=False): expert_map.json, atomically"},
    {"validate", (PyCFunction)placement_validate, METH_VARARGS,
     "validate(allow_duplicates=False)"},
    {"duplicates", (PyCFunction)placement_duplicates, METH_NOARGS, "extra copies on a device"},
    {"clone", (PyCFunction)placement_clone, METH_NOARGS, "a deep copy"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef placement_getset[] = {
    {"num_layers", (getter)placement_get, NULL, NULL, "num_layers"},
    {"num_experts", (getter)placement_get, NULL, NULL, "num_experts"},
    {"num_slots", (getter)placement_get, NULL, NULL, "num_slots"},
    {"num_gpus", (getter)placement_get, NULL, NULL, "num_gpus"},
    {"max_replicas", (getter)placement_get, NULL, NULL, "max_replicas"},
    {"layer_ids", (getter)placement_get, NULL, NULL, "layer_ids"},
    {"phy2log", (getter)placement_get, NULL, NULL, "phy2log"},
    {"logcnt", (getter)placement_get, NULL, NULL, "logcnt"},
    {"log2phy", (getter)placement_get, NULL, NULL, "log2phy"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject PlacementType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eplb._eplb.PlacementHandle",
    .tp_basicsize = sizeof(PlacementObject),
    .tp_dealloc = (destructor)placement_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An eplb_placement (expert map).",
    .tp_methods = placement_methods,
    .tp_getset = placement_getset,
};

/* Accepts a LoadsHandle or a PlacementHandle (or None where allowed) in PyArg "O&". */
static int conv_loads(PyObject *o, void *out) {
  if (!PyObject_TypeCheck(o, &LoadsType)) {
    PyErr_Format(PyExc_TypeError, "expected eplb.Loads, got %s", Py_TYPE(o)->tp_name);
    return 0;
  }
  *(eplb_loads **)out = ((LoadsObject *)o)->p;
  return 1;
}

static int conv_placement(PyObject *o, void *out) {
  if (!PyObject_TypeCheck(o, &PlacementType)) {
    PyErr_Format(PyExc_TypeError, "expected eplb.Placement, got %s", Py_TYPE(o)->tp_name);
    return 0;
  }
  *(eplb_placement **)out = ((PlacementObject *)o)->p;
  return 1;
}

static int conv_placement_opt(PyObject *o, void *out) {
  if (o == Py_None) {
    *(eplb_placement **)out = NULL;
    return 1;
  }
  return conv_placement(o, out);
}

/* ---- planning and measuring ---- */

/* _eplb.plan(loads, num_replicas, num_gpus, num_groups=1, num_nodes=1, policy=1, hierarchy=0,
 * allow_duplicates=False, time_budget_ms=0, old=None, max_moves=-1): eplb_plan, or
 * eplb_plan_replan against `old`. */
static PyObject *py_plan(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"loads", "num_replicas", "num_gpus", "num_groups", "num_nodes",
                           "policy", "hierarchy", "allow_duplicates", "time_budget_ms", "old",
                           "max_moves", NULL};
  eplb_loads *loads;
  eplb_placement *old = NULL, *out = NULL;
  eplb_params prm;
  eplb_params_init(&prm);
  int policy = (int)prm.policy, hier = (int)prm.hierarchy;
  long long max_moves = -1;
  prm.num_groups = prm.num_nodes = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&ii|iiiipdO&L", kwlist, conv_loads, &loads,
                                   &prm.num_replicas, &prm.num_gpus, &prm.num_groups,
                                   &prm.num_nodes, &policy, &hier, &prm.allow_duplicates,
                                   &prm.time_budget_ms, conv_placement_opt, &old, &max_moves))
    return NULL;
  prm.policy = (eplb_policy)policy;
  prm.hierarchy = (eplb_hierarchy)hier;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = old ? eplb_plan_replan(loads, &prm, old, max_moves, &out) : eplb_plan(loads, &prm, &out);
  Py_END_ALLOW_THREADS
  return rc ? raise_eplb(rc) : wrap_placement(out);
}

/* _eplb.lower_bound(loads, layer, num_slots, num_gpus). */
static PyObject *py_lower_bound(PyObject *self, PyObject *args) {
  (void)self;
  eplb_loads *loads;
  int layer, R, G;
  if (!PyArg_ParseTuple(args, "O&iii", conv_loads, &loads, &layer, &R, &G))
    return NULL;
  double lb;
  int rc = eplb_lower_bound(loads, layer, R, G, &lb);
  return rc ? raise_eplb(rc) : PyFloat_FromDouble(lb);
}

/* _eplb.device_loads(loads, row, placement, layer): the G device loads of one layer. */
static PyObject *py_device_loads(PyObject *self, PyObject *args) {
  (void)self;
  eplb_loads *loads;
  eplb_placement *p;
  int row, layer;
  if (!PyArg_ParseTuple(args, "O&iO&i", conv_loads, &loads, &row, conv_placement, &p, &layer))
    return NULL;
  double *d = malloc((size_t)p->num_gpus * sizeof *d);
  if (!d)
    return PyErr_NoMemory();
  int rc = eplb_map_device_loads(loads, row, p, layer, d);
  if (rc) {
    free(d);
    return raise_eplb(rc);
  }
  Py_ssize_t shape[1] = {p->num_gpus};
  return array_new(NULL, d, "d", 8, 1, shape, NULL);
}

/* One line of a report as a dict, with the keys of `eplb report --json` (overall: no
 * layer_id; moves None without an old map). */
static PyObject *layer_report_dict(const eplb_layer_report *r, int overall) {
  PyObject *moves = r->moves < 0 ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLongLong(r->moves);
  PyObject *d = moves ? Py_BuildValue("{s:d,s:d,s:d,s:d,s:d,s:d,s:d,s:L,s:i,s:N,s:d}",
                                      "total_load", r->total, "mean_load", r->mean_load,
                                      "max_load", r->max_load, "lower_bound", r->lower_bound,
                                      "balancedness", r->balancedness, "max_over_lb",
                                      r->max_over_lb, "imbalance", r->imbalance, "duplicates",
                                      (long long)r->duplicates, "missing", (int)r->missing,
                                      "moves", moves, "off_node_share", r->off_node_share)
                      : NULL;
  if (d && !overall) {
    PyObject *id = PyLong_FromLongLong(r->layer_id);
    if (!id || PyDict_SetItemString(d, "layer_id", id) != 0)
      Py_CLEAR(d);
    Py_XDECREF(id);
  }
  return d;
}

/* _eplb.report(loads, map, old=None, num_groups=1, num_nodes=1) -> dict. */
static PyObject *py_report(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"loads", "map", "old", "num_groups", "num_nodes", NULL};
  eplb_loads *loads;
  eplb_placement *map, *old = NULL;
  int K = 1, N = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&|O&ii", kwlist, conv_loads, &loads,
                                   conv_placement, &map, conv_placement_opt, &old, &K, &N))
    return NULL;
  eplb_report *r = NULL;
  int rc = eplb_report_compute(loads, map, old, K, N, &r);
  if (rc)
    return raise_eplb(rc);
  PyObject *layers = PyList_New(r->num_layers), *res = NULL;
  for (int32_t l = 0; layers && l < r->num_layers; l++) {
    PyObject *d = layer_report_dict(&r->layers[l], 0);
    if (!d)
      goto done;
    PyList_SET_ITEM(layers, l, d);
  }
  PyObject *overall = layers ? layer_report_dict(&r->overall, 1) : NULL;
  if (overall)
    res = Py_BuildValue("{s:i,s:i,s:O,s:N}", "num_gpus", r->num_gpus, "num_slots", r->num_slots,
                        "layers", layers, "overall", overall);
done:
  Py_XDECREF(layers);
  eplb_report_free(r);
  return res;
}

/* _eplb.report_svg(loads, map, initial, path). */
static PyObject *py_report_svg(PyObject *self, PyObject *args) {
  (void)self;
  eplb_loads *loads;
  eplb_placement *map, *initial;
  PyObject *b;
  if (!PyArg_ParseTuple(args, "O&O&O&O&", conv_loads, &loads, conv_placement, &map,
                        conv_placement_opt, &initial, PyUnicode_FSConverter, &b))
    return NULL;
  int rc = eplb_report_svg(loads, map, initial, PyBytes_AS_STRING(b));
  Py_DECREF(b);
  return rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
}

/* ---- collector ---- */

static PyObject *collector_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"num_layers", "num_experts", "num_windows", NULL};
  int L, E, W = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "ii|i", kwlist, &L, &E, &W))
    return NULL;
  eplb_collector *c = eplb_collector_create(L, E, W);
  if (!c)
    return raise_eplb(L < 1 || E < 1 || W < 1 ? EPLB_EINVAL : EPLB_ENOMEM);
  CollectorObject *o = (CollectorObject *)type->tp_alloc(type, 0);
  if (!o) {
    eplb_collector_free(c);
    return NULL;
  }
  o->c = c;
  return (PyObject *)o;
}

static void collector_dealloc(CollectorObject *o) {
  eplb_collector_free(o->c);
  Py_TYPE(o)->tp_free((PyObject *)o);
}

/* record(layer, topk_ids): the hot path, a fast call: one buffer request and the C count. */
static PyObject *collector_record(CollectorObject *o, PyObject *const *args, Py_ssize_t n) {
  if (n != 2)
    return PyErr_Format(PyExc_TypeError, "record(layer, topk_ids) takes 2 arguments (%zd given)",
                        n);
  long layer = PyLong_AsLong(args[0]);
  if (layer == -1 && PyErr_Occurred())
    return NULL;
  Py_buffer v;
  if (get_buffer(args[1], &v, PyBUF_ANY_CONTIGUOUS | PyBUF_FORMAT) != 0) {
    return raise_einval("topk_ids: expected a contiguous int32 or int64 array or CPU tensor, got %s",
                        Py_TYPE(args[1])->tp_name);
  }
  enum num_kind kind;
  if (format_kind(&v, &kind) != 0 || kind != NUM_INT || (v.itemsize != 4 && v.itemsize != 8)) {
    PyObject *r = raise_einval("topk_ids: dtype must be int32 or int64 (item format '%s')",
                               v.format ? v.format : "?");
    PyBuffer_Release(&v);
    return r;
  }
  if (layer < INT32_MIN || layer > INT32_MAX)
    layer = -1;
  int rc = eplb_collector_record(o->c, (int32_t)layer, v.buf, (size_t)(v.len / v.itemsize),
                                 v.itemsize == 4 ? EPLB_ID_INT32 : EPLB_ID_INT64);
  PyBuffer_Release(&v);
  return rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
}

/* add_counts(layer, counts): counts of one layer made elsewhere (E non-negative integers). */
static PyObject *collector_add_counts(CollectorObject *o, PyObject *args) {
  int layer;
  PyObject *obj;
  if (!PyArg_ParseTuple(args, "iO", &layer, &obj))
    return NULL;
  int32_t E;
  eplb_collector_dims(o->c, NULL, &E, NULL);
  Py_buffer v;
  enum num_kind kind;
  if (get_numbers(obj, &v, 0, "counts", &kind) != 0)
    return NULL;
  PyObject *res = NULL;
  uint64_t *tmp = NULL;
  if (kind == NUM_FLOAT || v.len / v.itemsize != E) {
    raise_einval("counts: expected %d integers (one per expert), got %zd %s", (int)E,
                 v.len / v.itemsize, kind == NUM_FLOAT ? "floats" : "values");
    goto done;
  }
  if (kind == NUM_UINT && v.itemsize == 8) {
    res = Py_None; /* counted below straight from the buffer */
  } else {
    tmp = malloc((size_t)E * sizeof *tmp);
    if (!tmp) {
      PyErr_NoMemory();
      goto done;
    }
    for (int32_t e = 0; e < E; e++) {
      int64_t iv;
      item_at(&v, kind, e, &iv);
      if (iv < 0) {
        raise_einval("counts[%d]: %lld is negative", (int)e, (long long)iv);
        goto done;
      }
      tmp[e] = (uint64_t)iv;
    }
  }
  int rc = eplb_collector_add_counts(o->c, layer, tmp ? tmp : (const uint64_t *)v.buf);
  res = rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
done:
  free(tmp);
  PyBuffer_Release(&v);
  return res;
}

static PyObject *collector_next_window(CollectorObject *o, PyObject *unused) {
  (void)unused;
  eplb_collector_next_window(o->c);
  Py_RETURN_NONE;
}

static PyObject *collector_reset(CollectorObject *o, PyObject *unused) {
  (void)unused;
  eplb_collector_reset(o->c);
  Py_RETURN_NONE;
}

static PyObject *collector_merge(CollectorObject *o, PyObject *other) {
  if (!PyObject_TypeCheck(other, &CollectorType))
    return PyErr_Format(PyExc_TypeError, "merge: expected a Collector, got %s",
                        Py_TYPE(other)->tp_name);
  int rc = eplb_collector_merge(o->c, ((CollectorObject *)other)->c);
  return rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
}

/* counts(window=-1): an L x E uint64 array (a copy) of one window or of the whole ring. */
static PyObject *collector_counts(CollectorObject *o, PyObject *args) {
  int window = EPLB_WINDOW_ALL;
  if (!PyArg_ParseTuple(args, "|i", &window))
    return NULL;
  int32_t L, E;
  eplb_collector_dims(o->c, &L, &E, NULL);
  size_t n = (size_t)L * (size_t)E;
  uint64_t *out = malloc(n * sizeof *out);
  if (!out)
    return PyErr_NoMemory();
  int rc = eplb_collector_counts(o->c, window, out, n);
  if (rc) {
    free(out);
    return raise_eplb(rc);
  }
  Py_ssize_t shape[2] = {L, E};
  return array_new(NULL, out, "Q", 8, 2, shape, NULL);
}

static PyObject *collector_loads(CollectorObject *o, PyObject *args) {
  int window = EPLB_WINDOW_ALL;
  if (!PyArg_ParseTuple(args, "|i", &window))
    return NULL;
  eplb_loads *p = NULL;
  int rc = eplb_collector_loads(o->c, window, &p);
  return rc ? raise_eplb(rc) : wrap_loads(p);
}

static PyObject *collector_dims(CollectorObject *o, PyObject *unused) {
  (void)unused;
  int32_t L, E, W;
  eplb_collector_dims(o->c, &L, &E, &W);
  return Py_BuildValue("(iii)", (int)L, (int)E, (int)W);
}

/* _record_repeat(layer, topk_ids, calls): eplb_collector_record called `calls` times in a C
 * loop on one buffer: the C call's throughput, the baseline of bench/python/bench_python.py. */
static PyObject *collector_record_repeat(CollectorObject *o, PyObject *args) {
  int layer;
  long long calls;
  PyObject *obj;
  if (!PyArg_ParseTuple(args, "iOL", &layer, &obj, &calls))
    return NULL;
  Py_buffer v;
  enum num_kind kind;
  if (get_numbers(obj, &v, 0, "topk_ids", &kind) != 0)
    return NULL;
  int rc = 0;
  eplb_id_type type = v.itemsize == 4 ? EPLB_ID_INT32 : EPLB_ID_INT64;
  for (long long i = 0; rc == 0 && i < calls; i++)
    rc = eplb_collector_record(o->c, layer, v.buf, (size_t)(v.len / v.itemsize), type);
  PyBuffer_Release(&v);
  return rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
}

static PyMethodDef collector_methods[] = {
    {"_record_repeat", (PyCFunction)collector_record_repeat, METH_VARARGS,
     "_record_repeat(layer, topk_ids, calls): the C call in a C loop (benchmark baseline)"},
    {"record", (PyCFunction)(void (*)(void))collector_record, METH_FASTCALL,
     "record(layer, topk_ids): count one forward of one layer"},
    {"add_counts", (PyCFunction)collector_add_counts, METH_VARARGS,
     "add_counts(layer, counts): add E counts to a layer"},
    {"next_window", (PyCFunction)collector_next_window, METH_NOARGS, "close the window"},
    {"reset", (PyCFunction)collector_reset, METH_NOARGS, "clear every window"},
    {"merge", (PyCFunction)collector_merge, METH_O, "merge(other): add another collector"},
    {"counts", (PyCFunction)collector_counts, METH_VARARGS, "counts(window=-1)"},
    {"loads", (PyCFunction)collector_loads, METH_VARARGS, "loads(window=-1)"},
    {"dims", (PyCFunction)collector_dims, METH_NOARGS, "(num_layers, num_experts, num_windows)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CollectorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eplb._eplb.Collector",
    .tp_basicsize = sizeof(CollectorObject),
    .tp_dealloc = (destructor)collector_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Collector(num_layers, num_experts, num_windows=1): token counts per layer and "
              "expert, in a ring of windows (eplb/collect.h).",
    .tp_methods = collector_methods,
    .tp_new = collector_new,
};

/* ---- transfer plans ---- */

static void transfer_dealloc(TransferObject *o) {
  eplb_transfer_free(o->t);
  PyObject_Free(o);
}

/* _eplb.transfer_plan(old, new, gpus_per_node=0, align=True, relabel=False). */
static PyObject *py_transfer_plan(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"old", "new", "gpus_per_node", "align", "relabel", NULL};
  eplb_placement *from, *to;
  eplb_transfer_opts opts;
  eplb_transfer_opts_init(&opts);
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&O&|ipp", kwlist, conv_placement, &from,
                                   conv_placement, &to, &opts.gpus_per_node, &opts.align,
                                   &opts.relabel))
    return NULL;
  eplb_transfer *t = NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = eplb_transfer_plan_ex(from, to, &opts, &t);
  Py_END_ALLOW_THREADS
  if (rc)
    return raise_eplb(rc);
  TransferObject *o = PyObject_New(TransferObject, &TransferType);
  if (!o) {
    eplb_transfer_free(t);
    return NULL;
  }
  o->t = t;
  return (PyObject *)o;
}

/* The L x to_slots view of one int32 field of the plan's xfers (strided, zero-copy). */
static PyObject *xfer_field(TransferObject *o, size_t offset) {
  eplb_transfer *t = o->t;
  Py_ssize_t shape[2] = {t->num_layers, t->to_slots};
  Py_ssize_t strides[2] = {(Py_ssize_t)sizeof(eplb_xfer) * t->to_slots, sizeof(eplb_xfer)};
  return array_new((PyObject *)o, (char *)t->xfers + offset, "i", 4, 2, shape, strides);
}

static PyObject *transfer_get(TransferObject *o, void *closure) {
  const char *what = closure;
  eplb_transfer *t = o->t;
  Py_ssize_t to_shape[2] = {t->num_layers, t->to_slots};
  Py_ssize_t from_shape[2] = {t->num_layers, t->from_slots};
  if (!strcmp(what, "num_layers"))
    return PyLong_FromLong(t->num_layers);
  if (!strcmp(what, "num_gpus"))
    return PyLong_FromLong(t->num_gpus);
  if (!strcmp(what, "from_slots"))
    return PyLong_FromLong(t->from_slots);
  if (!strcmp(what, "to_slots"))
    return PyLong_FromLong(t->to_slots);
  if (!strcmp(what, "expert"))
    return xfer_field(o, offsetof(eplb_xfer, expert));
  if (!strcmp(what, "kind"))
    return xfer_field(o, offsetof(eplb_xfer, kind));
  if (!strcmp(what, "src_rank"))
    return xfer_field(o, offsetof(eplb_xfer, src_rank));
  if (!strcmp(what, "src_slot"))
    return xfer_field(o, offsetof(eplb_xfer, src_slot));
  if (!strcmp(what, "staged"))
    return array_new((PyObject *)o, t->staged, "B", 1, 2, to_shape, NULL);
  if (!strcmp(what, "step"))
    return array_new((PyObject *)o, t->step, "i", 4, 2, to_shape, NULL);
  if (!strcmp(what, "needed"))
    return array_new((PyObject *)o, t->needed, "B", 1, 2, from_shape, NULL);
  const eplb_transfer_stats *s = &t->stats;
  return Py_BuildValue("{s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:L,s:i}", "slots",
                       (long long)s->slots, "keeps", (long long)s->keeps, "local_copies",
                       (long long)s->local_copies, "receives", (long long)s->receives,
                       "upstream_copies", (long long)s->upstream_copies, "upstream_remote",
                       (long long)s->upstream_remote, "max_sent", (long long)s->max_sent,
                       "max_received", (long long)s->max_received, "upstream_max_sent",
                       (long long)s->upstream_max_sent, "max_layer_sent",
                       (long long)s->max_layer_sent, "staging_slots", (int)s->staging_slots);
}

/* to(): a copy of the layout the plan produces (the one to route with). */
static PyObject *transfer_to(TransferObject *o, PyObject *unused) {
  (void)unused;
  eplb_placement *p = NULL;
  int rc = eplb_placement_clone(o->t->to, &p);
  return rc ? raise_eplb(rc) : wrap_placement(p);
}

static PyObject *transfer_staging_slots(TransferObject *o, PyObject *args) {
  int layer, rank;
  if (!PyArg_ParseTuple(args, "ii", &layer, &rank))
    return NULL;
  int32_t n = eplb_transfer_staging_slots(o->t, layer, rank);
  if (n < 0)
    return raise_einval("staging_slots: layer %d or rank %d out of range", layer, rank);
  return PyLong_FromLong(n);
}

static PyMethodDef transfer_methods[] = {
    {"to", (PyCFunction)transfer_to, METH_NOARGS, "the new layout (aligned): route with it"},
    {"staging_slots", (PyCFunction)transfer_staging_slots, METH_VARARGS,
     "staging_slots(layer, rank)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef transfer_getset[] = {
    {"num_layers", (getter)transfer_get, NULL, NULL, "num_layers"},
    {"num_gpus", (getter)transfer_get, NULL, NULL, "num_gpus"},
    {"from_slots", (getter)transfer_get, NULL, NULL, "from_slots"},
    {"to_slots", (getter)transfer_get, NULL, NULL, "to_slots"},
    {"expert", (getter)transfer_get, NULL, NULL, "expert"},
    {"kind", (getter)transfer_get, NULL, NULL, "kind"},
    {"src_rank", (getter)transfer_get, NULL, NULL, "src_rank"},
    {"src_slot", (getter)transfer_get, NULL, NULL, "src_slot"},
    {"staged", (getter)transfer_get, NULL, NULL, "staged"},
    {"step", (getter)transfer_get, NULL, NULL, "step"},
    {"needed", (getter)transfer_get, NULL, NULL, "needed"},
    {"stats", (getter)transfer_get, NULL, NULL, "stats"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TransferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "eplb._eplb.TransferHandle",
    .tp_basicsize = sizeof(TransferObject),
    .tp_dealloc = (destructor)transfer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An eplb_transfer (transfer plan).",
    .tp_methods = transfer_methods,
    .tp_getset = transfer_getset,
};

/* ---- online re-balancing ---- */

/* Copies n values into a new Array that owns them. */
static PyObject *array_copy(const void *src, size_t n, const char *format, Py_ssize_t itemsize) {
  void *d = malloc(n ? n * (size_t)itemsize : 1);
  if (!d)
    return PyErr_NoMemory();
  memcpy(d, src, n * (size_t)itemsize);
  Py_ssize_t shape[1] = {(Py_ssize_t)n};
  return array_new(NULL, d, format, itemsize, 1, shape, NULL);
}

/* _eplb.rebalance(source, cur, num_replicas, num_gpus, num_groups=1, num_nodes=1, policy=1,
 * hierarchy=0, allow_duplicates=False, time_budget_ms=0, max_moves=-1, min_gain=-1 (default),
 * first_window=0, num_windows=0, weights=None, decay=1) -> dict: eplb_rebalance on a
 * LoadsHandle (already combined), or eplb_rebalance_collector on a Collector (its windows
 * combined by the window options). */
static PyObject *py_rebalance(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  static char *kwlist[] = {"source", "cur", "num_replicas", "num_gpus", "num_groups",
                           "num_nodes", "policy", "hierarchy", "allow_duplicates",
                           "time_budget_ms", "max_moves", "min_gain", "first_window",
                           "num_windows", "weights", "decay", NULL};
  PyObject *source, *weights_obj = Py_None;
  eplb_placement *cur;
  eplb_params prm;
  eplb_params_init(&prm);
  eplb_rebalance_opts o;
  eplb_rebalance_opts_init(&o);
  int policy = (int)prm.policy, hier = (int)prm.hierarchy;
  long long max_moves = -1;
  double min_gain = -1;
  prm.num_groups = prm.num_nodes = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&ii|iiiipdLdiiOd", kwlist, &source,
                                   conv_placement, &cur, &prm.num_replicas, &prm.num_gpus,
                                   &prm.num_groups, &prm.num_nodes, &policy, &hier,
                                   &prm.allow_duplicates, &prm.time_budget_ms, &max_moves,
                                   &min_gain, &o.first_window, &o.num_windows, &weights_obj,
                                   &o.decay))
    return NULL;
  prm.policy = (eplb_policy)policy;
  prm.hierarchy = (eplb_hierarchy)hier;
  o.max_moves = max_moves;
  if (min_gain >= 0 || !isfinite(min_gain))
    o.min_gain = min_gain;
  Py_buffer wv = {0};
  double *w = NULL;
  if (weights_obj != Py_None) {
    enum num_kind kind;
    if (get_numbers(weights_obj, &wv, 1, "weights", &kind) != 0)
      return NULL;
    w = malloc((size_t)(wv.shape[0] ? wv.shape[0] : 1) * sizeof *w);
    if (!w) {
      PyBuffer_Release(&wv);
      return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < wv.shape[0]; i++) {
      int64_t iv;
      w[i] = item_at(&wv, kind, i, &iv);
    }
    if (o.num_windows == 0)
      o.num_windows = (int32_t)wv.shape[0];
    else if (o.num_windows != wv.shape[0]) {
      free(w);
      PyBuffer_Release(&wv);
      return raise_einval("weights: %zd values for %d windows", wv.shape[0], (int)o.num_windows);
    }
    o.weights = w;
    PyBuffer_Release(&wv);
  }
  eplb_rebalance_result *r = NULL;
  int rc;
  if (PyObject_TypeCheck(source, &LoadsType)) {
    eplb_loads *loads = ((LoadsObject *)source)->p;
    Py_BEGIN_ALLOW_THREADS
    rc = eplb_rebalance(loads, &prm, cur, &o, &r);
    Py_END_ALLOW_THREADS
  } else if (PyObject_TypeCheck(source, &CollectorType)) {
    eplb_collector *c = ((CollectorObject *)source)->c;
    Py_BEGIN_ALLOW_THREADS
    rc = eplb_rebalance_collector(c, &prm, cur, &o, &r);
    Py_END_ALLOW_THREADS
  } else {
    free(w);
    return PyErr_Format(PyExc_TypeError, "rebalance: expected Loads or Collector, got %s",
                        Py_TYPE(source)->tp_name);
  }
  free(w);
  if (rc)
    return raise_eplb(rc);
  PyObject *res = NULL;
  size_t L = (size_t)r->num_layers;
  PlacementObject *po = NULL;
  TransferObject *to = NULL;
  eplb_placement *p = NULL;
  if (eplb_placement_clone(r->placement, &p) != 0) {
    raise_eplb(EPLB_ENOMEM);
    goto done;
  }
  po = (PlacementObject *)wrap_placement(p);
  to = po ? PyObject_New(TransferObject, &TransferType) : NULL;
  if (!to)
    goto done;
  to->t = r->transfer; /* the handle takes the plan over */
  r->transfer = NULL;
  res = Py_BuildValue("{s:N,s:N,s:i,s:L,s:N,s:N,s:N,s:N,s:N,s:d,s:d}", "placement", po,
                      "transfer", to, "num_moved", (int)r->num_moved, "copies_moved",
                      (long long)r->copies_moved, "moved", array_copy(r->moved, L, "B", 1),
                      "cur_max_over_mean", array_copy(r->cur_max_over_mean, L, "d", 8),
                      "new_max_over_mean", array_copy(r->new_max_over_mean, L, "d", 8),
                      "candidate_max_over_mean",
                      array_copy(r->candidate_max_over_mean, L, "d", 8), "moves",
                      array_copy(r->moves, L, "q", 8), "cur_overall", r->cur_overall,
                      "new_overall", r->new_overall);
  po = NULL, to = NULL; /* stolen by Py_BuildValue, even on failure */
done:
  Py_XDECREF(po);
  Py_XDECREF(to);
  eplb_rebalance_result_free(r);
  return res;
}

/* ---- routing and config ---- */

/* _eplb.route(placement, layer, ids, out, mode=0, rank=0, gpus_per_node=0): fills the int32
 * buffer `out` with a physical slot for each int32 logical id. */
static PyObject *py_route(PyObject *self, PyObject *args) {
  (void)self;
  eplb_placement *p;
  int layer, mode = 0, rank = 0, ppn = 0;
  PyObject *ids_obj, *out_obj;
  if (!PyArg_ParseTuple(args, "O&iOO|iii", conv_placement, &p, &layer, &ids_obj, &out_obj, &mode,
                        &rank, &ppn))
    return NULL;
  Py_buffer ids, out;
  if (get_buffer(ids_obj, &ids, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) != 0)
    return raise_einval("route: ids: expected a C-contiguous int32 array");
  if (get_buffer(out_obj, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE)) {
    PyBuffer_Release(&ids);
    return raise_einval("route: out: expected a writable C-contiguous int32 array");
  }
  PyObject *res = NULL;
  enum num_kind k1, k2;
  if (format_kind(&ids, &k1) || format_kind(&out, &k2) || k1 != NUM_INT || k2 != NUM_INT ||
      ids.itemsize != 4 || out.itemsize != 4 || ids.len != out.len) {
    raise_einval("route: ids and out must be int32 arrays of one length");
  } else {
    int rc = eplb_route_nodes(p, layer, ids.buf, (size_t)(ids.len / 4), out.buf,
                              (eplb_route_mode)mode, rank, ppn);
    res = rc ? raise_eplb(rc) : (Py_INCREF(Py_None), Py_None);
  }
  PyBuffer_Release(&ids);
  PyBuffer_Release(&out);
  return res;
}

/* _eplb.route_table(placement, layer, mode=0, rank=0, gpus_per_node=0) -> (slots [E, X],
 * counts [E]): token i of expert e goes to slots[e, i % counts[e]] (eplb_route_table). */
static PyObject *py_route_table(PyObject *self, PyObject *args) {
  (void)self;
  eplb_placement *p;
  int layer, mode = 0, rank = 0, ppn = 0;
  if (!PyArg_ParseTuple(args, "O&i|iii", conv_placement, &p, &layer, &mode, &rank, &ppn))
    return NULL;
  int32_t E = p->num_experts, X = p->max_replicas > 0 ? p->max_replicas : 1;
  int32_t *slots = malloc((size_t)E * (size_t)X * sizeof *slots);
  int32_t *counts = malloc((size_t)E * sizeof *counts);
  if (!slots || !counts) {
    free(slots);
    free(counts);
    return PyErr_NoMemory();
  }
  int rc = eplb_route_table(p, layer, (eplb_route_mode)mode, rank, ppn, slots, counts);
  if (rc) {
    free(slots);
    free(counts);
    return raise_eplb(rc);
  }
  Py_ssize_t s_shape[2] = {E, X}, c_shape[1] = {E};
  PyObject *a = array_new(NULL, slots, "i", 4, 2, s_shape, NULL);
  PyObject *b = array_new(NULL, counts, "i", 4, 1, c_shape, NULL);
  if (!a || !b) {
    Py_XDECREF(a);
    Py_XDECREF(b);
    return NULL;
  }
  return Py_BuildValue("(NN)", a, b);
}

/* _eplb.config_load(path) -> dict of the `generate:` keys (code defaults where unset). */
static PyObject *py_config_load(PyObject *self, PyObject *arg) {
  (void)self;
  PyObject *b;
  if (!PyUnicode_FSConverter(arg, &b))
    return NULL;
  eplb_config *cfg = malloc(sizeof *cfg);
  if (!cfg) {
    Py_DECREF(b);
    return PyErr_NoMemory();
  }
  eplb_config_init(cfg);
  int rc = eplb_config_load(PyBytes_AS_STRING(b), cfg);
  Py_DECREF(b);
  PyObject *res = rc ? raise_eplb(rc)
                     : Py_BuildValue("{s:O,s:s,s:s}", "token_collects",
                                     cfg->token_collects ? Py_True : Py_False, "token_save_path",
                                     cfg->token_save_path, "expert_map_path",
                                     cfg->expert_map_path);
  free(cfg);
  return res;
}

static PyObject *py_version(PyObject *self, PyObject *unused) {
  (void)self, (void)unused;
  return PyUnicode_FromString(eplb_version_string());
}

/* ---- module ---- */

static PyMethodDef module_methods[] = {
    {"loads_from_array", (PyCFunction)(void (*)(void))py_loads_from_array,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"loads_read", (PyCFunction)(void (*)(void))py_loads_read, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"loads_parse", (PyCFunction)(void (*)(void))py_loads_parse, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"placement_read", (PyCFunction)(void (*)(void))py_placement_read,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"placement_initial", py_placement_initial, METH_VARARGS, NULL},
    {"placement_from_array", (PyCFunction)(void (*)(void))py_placement_from_array,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"plan", (PyCFunction)(void (*)(void))py_plan, METH_VARARGS | METH_KEYWORDS, NULL},
    {"lower_bound", py_lower_bound, METH_VARARGS, NULL},
    {"device_loads", py_device_loads, METH_VARARGS, NULL},
    {"report", (PyCFunction)(void (*)(void))py_report, METH_VARARGS | METH_KEYWORDS, NULL},
    {"report_svg", py_report_svg, METH_VARARGS, NULL},
    {"transfer_plan", (PyCFunction)(void (*)(void))py_transfer_plan,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"route", py_route, METH_VARARGS, NULL},
    {"route_table", py_route_table, METH_VARARGS, NULL},
    {"rebalance", (PyCFunction)(void (*)(void))py_rebalance, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"config_load", py_config_load, METH_O, NULL},
    {"version", py_version, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_eplb", "libeplb, the C library under the eplb package.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

/* Creates eplb.Error and one subclass per error code (also deriving from a built-in). */
static int add_errors(PyObject *m) {
  Error = PyErr_NewExceptionWithDoc("eplb.Error",
                                    "An eplb failure: .code (negative), .name (EPLB_...), "
                                    ".detail (eplb_last_error())",
                                    NULL, NULL);
  if (!Error || PyModule_AddObject(m, "Error", (Py_INCREF(Error), Error)) != 0)
    return -1;
  for (size_t i = 0; i < N_ERR_CLASSES; i++) {
    char qual[64];
    snprintf(qual, sizeof qual, "eplb.%s", err_classes[i].name);
    PyObject *bases = PyTuple_Pack(2, Error, *err_classes[i].base);
    if (!bases)
      return -1;
    err_classes[i].cls = PyErr_NewException(qual, bases, NULL);
    Py_DECREF(bases);
    if (!err_classes[i].cls)
      return -1;
    /* Class defaults, so that an instance raised from Python carries them too. */
    PyObject *code = PyLong_FromLong(err_classes[i].code);
    PyObject *name = PyUnicode_FromString(eplb_err_name(err_classes[i].code));
    int bad = !code || !name || PyObject_SetAttrString(err_classes[i].cls, "code", code) != 0 ||
              PyObject_SetAttrString(err_classes[i].cls, "name", name) != 0;
    Py_XDECREF(code);
    Py_XDECREF(name);
    if (bad)
      return -1;
    Py_INCREF(err_classes[i].cls);
    if (PyModule_AddObject(m, err_classes[i].name, err_classes[i].cls) != 0)
      return -1;
  }
  return 0;
}

PyMODINIT_FUNC PyInit__eplb(void);

PyMODINIT_FUNC PyInit__eplb(void) {
  PyTypeObject *types[] = {&ArrayType, &LoadsType, &PlacementType, &CollectorType,
                           &TransferType};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++)
    if (PyType_Ready(types[i]) != 0)
      return NULL;
  PyObject *m = PyModule_Create(&module_def);
  if (!m)
    return NULL;
  if (add_errors(m) != 0)
    goto fail;
  const char *names[] = {"Array", "LoadsHandle", "PlacementHandle", "Collector",
                         "TransferHandle"};
  for (size_t i = 0; i < sizeof types / sizeof *types; i++) {
    Py_INCREF(types[i]);
    if (PyModule_AddObject(m, names[i], (PyObject *)types[i]) != 0)
      goto fail;
  }
  if (PyModule_AddIntConstant(m, "WINDOW_ALL", EPLB_WINDOW_ALL) != 0 ||
      PyModule_AddStringConstant(m, "TOKEN_FILE", EPLB_TOKEN_FILE) != 0)
    goto fail;
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
