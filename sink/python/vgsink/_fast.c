/* vgsink._fast: the Python sink's hot path in C. Turns a record (dataclass,
 * dict or any object with the fields) into a vgsink_row without asdict() and
 * calls vgsink_record_sized (with this header's sizeof(vgsink_row)) through
 * the pointer ctypes found; and carries the library's log lines to Python without taking the GIL
 * on the sender thread. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "vgsink.h"

typedef int (*fast_record_fn)(vgsink *, const vgsink_row *, size_t, unsigned);
typedef const char *(*fast_errstr_fn)(vgsink *);

enum fast_kind { FAST_STR, FAST_TIME, FAST_AMOUNT, FAST_MEASURE, FAST_JSON, FAST_INT };

/* The record's attributes, in vgsink_row's order (one entry per field). */
static struct fast_field {
	const char *name;
	enum fast_kind kind;
	size_t offset;
	PyObject *key; /* interned name */
} fast_fields[] = {
#define F(n, k)                                                                                    \
	{                                                                                          \
#n, k, offsetof(vgsink_row, n), NULL                                               \
	}
	F(id, FAST_STR),
	F(timestamp, FAST_TIME),
	F(modality, FAST_STR),
	F(model_id, FAST_STR),
	F(provider, FAST_STR),
	F(project, FAST_STR),
	F(input_units, FAST_AMOUNT),
	F(output_units, FAST_AMOUNT),
	F(cached_input_units, FAST_AMOUNT),
	F(cost_usd, FAST_AMOUNT),
	F(rated_price_usd, FAST_AMOUNT),
	F(pricing_source, FAST_STR),
	F(rate_rule, FAST_STR),
	F(ttfb_ms, FAST_MEASURE),
	F(total_latency_ms, FAST_MEASURE),
	F(status, FAST_STR),
	F(fallback_from, FAST_STR),
	F(error_message, FAST_STR),
	{ "metadata", FAST_JSON, offsetof(vgsink_row, metadata_json), NULL },
	F(session_id, FAST_STR),
	F(agent_id, FAST_STR),
	F(tenant_id, FAST_STR),
	F(revision, FAST_STR),
	F(turn_index, FAST_INT),
#undef F
};
#define FAST_NFIELDS (sizeof(fast_fields) / sizeof(fast_fields[0]))

static PyObject *fast_dict_name, *fast_value_name, *fast_timestamp_name, *fast_json_dumps;

/* ---- metadata as JSON text ------------------------------------------------------- */

struct fast_buf {
	char *p;
	size_t len, cap;
	char local[512];
};

static int fast_buf_grow(struct fast_buf *b, size_t more)
{
	size_t cap = b->cap * 2;
	char *p;

	while (cap < b->len + more)
		cap *= 2;
	if (b->p == b->local) {
		p = PyMem_Malloc(cap);
		if (p)
			memcpy(p, b->local, b->len);
	} else {
		p = PyMem_Realloc(b->p, cap);
	}
	if (!p)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int fast_buf_put(struct fast_buf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap && fast_buf_grow(b, n) != 0)
		return -1;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	return 0;
}

static int fast_json_str(struct fast_buf *b, PyObject *s)
{
	static const char hex[] = "0123456789abcdef";
	Py_ssize_t n;
	const char *u = PyUnicode_AsUTF8AndSize(s, &n);
	size_t start;

	if (!u)
		return -1;
	if (b->len + (size_t)n * 6 + 2 > b->cap && fast_buf_grow(b, (size_t)n * 6 + 2) != 0)
		return -1;
	start = b->len;
	b->p[b->len++] = '"';
	for (Py_ssize_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)u[i];

		if (c == '"' || c == '\\') {
			b->p[b->len++] = '\\';
			b->p[b->len++] = (char)c;
		} else if (c < 0x20) {
			memcpy(b->p + b->len, "\\u00", 4);
			b->p[b->len + 4] = hex[c >> 4];
			b->p[b->len + 5] = hex[c & 15];
			b->len += 6;
		} else {
			b->p[b->len++] = (char)c;
		}
	}
	b->p[b->len++] = '"';
	(void)start;
	return 0;
}

/* 0 written; 1 a value this encoder leaves to json.dumps; -1 a Python error. */
static int fast_json_value(struct fast_buf *b, PyObject *v, int depth)
{
	if (depth > 32)
		return 1;
	if (PyUnicode_CheckExact(v))
		return fast_json_str(b, v);
	if (v == Py_None)
		return fast_buf_put(b, "null", 4);
	if (v == Py_True)
		return fast_buf_put(b, "true", 4);
	if (v == Py_False)
		return fast_buf_put(b, "false", 5);
	if (PyLong_CheckExact(v)) {
		PyObject *t = PyObject_Str(v);
		Py_ssize_t n;
		const char *s;
		int rc;

		if (!t)
			return -1;
		s = PyUnicode_AsUTF8AndSize(t, &n);
		rc = s ? fast_buf_put(b, s, (size_t)n) : -1;
		Py_DECREF(t);
		return rc;
	}
	if (PyFloat_CheckExact(v)) {
		double d = PyFloat_AS_DOUBLE(v);
		char *s;
		int rc;

		if (!isfinite(d))
			return 1; /* json.dumps writes NaN; the library then names the field */
		s = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
		if (!s)
			return -1;
		rc = fast_buf_put(b, s, strlen(s));
		PyMem_Free(s);
		return rc;
	}
	if (PyDict_CheckExact(v)) {
		PyObject *k, *x;
		Py_ssize_t pos = 0;
		int first = 1, rc;

		if (fast_buf_put(b, "{", 1) != 0)
			return -1;
		while (PyDict_Next(v, &pos, &k, &x)) {
			if (!PyUnicode_CheckExact(k))
				return 1;
			if ((!first && fast_buf_put(b, ",", 1) != 0) || fast_json_str(b, k) != 0 ||
			    fast_buf_put(b, ":", 1) != 0)
				return -1;
			if ((rc = fast_json_value(b, x, depth + 1)) != 0)
				return rc;
			first = 0;
		}
		return fast_buf_put(b, "}", 1);
	}
	if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
		PyObject *seq = v;
		Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
		int rc;

		if (fast_buf_put(b, "[", 1) != 0)
			return -1;
		for (Py_ssize_t i = 0; i < n; i++) {
			if (i && fast_buf_put(b, ",", 1) != 0)
				return -1;
			if ((rc = fast_json_value(b, PySequence_Fast_GET_ITEM(seq, i),
						  depth + 1)) != 0)
				return rc;
		}
		return fast_buf_put(b, "]", 1);
	}
	return 1;
}

/* ---- one record ------------------------------------------------------------------ */

/* What a conversion keeps alive until vgsink_record returns. */
struct fast_conv {
	PyObject *refs[2 * FAST_NFIELDS + 2];
	int nrefs;
	struct fast_buf json;
	char err[256];
};

static void fast_conv_done(struct fast_conv *c)
{
	for (int i = 0; i < c->nrefs; i++)
		Py_DECREF(c->refs[i]);
	if (c->json.p != c->json.local)
		PyMem_Free(c->json.p);
}

/* The field's value (a new reference; Py_None when absent), or NULL with a
 * Python error. d: the object's __dict__ or the dict itself, may be NULL. */
static PyObject *fast_get(PyObject *obj, PyObject *d, bool is_dict, PyObject *key)
{
	PyObject *v;

	if (d) {
		v = PyDict_GetItemWithError(d, key);
		if (v) {
			Py_INCREF(v);
			return v;
		}
		if (PyErr_Occurred())
			return NULL;
		if (is_dict)
			Py_RETURN_NONE;
	}
	v = PyObject_GetAttr(obj, key);
	if (!v && PyErr_ExceptionMatches(PyExc_AttributeError)) {
		PyErr_Clear();
		Py_RETURN_NONE;
	}
	return v;
}

/* Sets c->err and returns -1 (the Python error, if any, is cleared). */
static int fast_bad(struct fast_conv *c, const char *field, const char *why, PyObject *v)
{
	PyObject *t = NULL, *val = NULL, *tb = NULL;
	const char *detail = NULL;
	PyObject *s = NULL;

	PyErr_Fetch(&t, &val, &tb);
	if (val) {
		s = PyObject_Str(val);
		detail = s ? PyUnicode_AsUTF8(s) : NULL;
		PyErr_Clear();
	}
	snprintf(c->err, sizeof(c->err), "%s: %s%s%s%s", field, why, v ? Py_TYPE(v)->tp_name : "",
		 detail ? ": " : "", detail ? detail : "");
	Py_XDECREF(s);
	Py_XDECREF(t);
	Py_XDECREF(val);
	Py_XDECREF(tb);
	return -1;
}

static int fast_str_field(struct fast_conv *c, const struct fast_field *f, PyObject *v,
			  const char **out)
{
	Py_ssize_t n;
	const char *s;

	if (!PyUnicode_Check(v)) {
		PyObject *e;

		if (PyBytes_Check(v)) {
			s = PyBytes_AS_STRING(v);
			n = PyBytes_GET_SIZE(v);
			goto check;
		}
		/* A str-valued Enum (modality, status) stands for its value. */
		e = PyObject_GetAttr(v, fast_value_name);
		if (!e || !PyUnicode_Check(e)) {
			Py_XDECREF(e);
			PyErr_Clear();
			return fast_bad(c, f->name, "must be a string, not ", v);
		}
		c->refs[c->nrefs++] = e;
		v = e;
	}
	s = PyUnicode_AsUTF8AndSize(v, &n);
	if (!s)
		return fast_bad(c, f->name, "not valid UTF-8", NULL);
check:
	if (strlen(s) != (size_t)n)
		return fast_bad(c, f->name, "holds a NUL character", NULL);
	*out = s;
	return 0;
}

static int fast_number(struct fast_conv *c, const struct fast_field *f, PyObject *v, double *out)
{
	if (PyFloat_CheckExact(v)) {
		*out = PyFloat_AS_DOUBLE(v);
		return 0;
	}
	if (PyUnicode_Check(v) || PyBytes_Check(v))
		return fast_bad(c, f->name, "must be a number, not ", v);
	*out = PyFloat_AsDouble(v);
	if (*out == -1.0 && PyErr_Occurred())
		return fast_bad(c, f->name, "must be a number, not ", v);
	return 0;
}

static int fast_json_field(struct fast_conv *c, const struct fast_field *f, PyObject *v,
			   const char **out)
{
	int rc;

	if (PyUnicode_Check(v))
		return fast_str_field(c, f, v, out);
	c->json.p = c->json.local;
	c->json.len = 0;
	c->json.cap = sizeof(c->json.local);
	rc = fast_json_value(&c->json, v, 0);
	if (rc < 0)
		return fast_bad(c, f->name, "cannot be written as JSON", NULL);
	if (rc > 0) {
		PyObject *t = PyObject_CallOneArg(fast_json_dumps, v);

		if (!t)
			return fast_bad(c, f->name, "cannot be written as JSON", NULL);
		c->refs[c->nrefs++] = t;
		return fast_str_field(c, f, t, out);
	}
	if (fast_buf_put(&c->json, "", 1) != 0)
		return fast_bad(c, f->name, "out of memory", NULL);
	*out = c->json.p;
	return 0;
}

static int fast_convert(struct fast_conv *c, PyObject *obj, vgsink_row *row)
{
	bool is_dict = PyDict_Check(obj);
	PyObject *d = is_dict ? obj : NULL;

	if (!is_dict) {
		PyObject **dp = _PyObject_GetDictPtr(obj);

		d = dp ? *dp : NULL; /* a plain instance's attributes, read directly */
		if (d && !PyDict_Check(d))
			d = NULL;
	}
	memset(row, 0, sizeof(*row));
	for (size_t i = 0; i < FAST_NFIELDS; i++) {
		const struct fast_field *f = &fast_fields[i];
		char *to = (char *)row + f->offset;
		PyObject *v = fast_get(obj, d, is_dict, f->key);
		int rc = 0;

		if (!v)
			return fast_bad(c, f->name, "cannot be read", NULL);
		c->refs[c->nrefs++] = v;
		if (v == Py_None) {
			if (f->kind == FAST_MEASURE)
				*(double *)to = NAN;
			else if (f->kind == FAST_INT)
				*(int *)to = -1;
			continue;
		}
		switch (f->kind) {
		case FAST_STR: rc = fast_str_field(c, f, v, (const char **)to); break;
		case FAST_JSON: rc = fast_json_field(c, f, v, (const char **)to); break;
		case FAST_AMOUNT:
		case FAST_MEASURE: rc = fast_number(c, f, v, (double *)to); break;
		case FAST_TIME:
			if (!PyFloat_Check(v) && !PyLong_Check(v) &&
			    PyObject_HasAttr(v, fast_timestamp_name)) {
				PyObject *t = PyObject_CallMethodNoArgs(v, fast_timestamp_name);

				if (!t)
					return fast_bad(c, f->name, "cannot be read", NULL);
				c->refs[c->nrefs++] = t;
				v = t;
			}
			rc = fast_number(c, f, v, (double *)to);
			break;
		case FAST_INT: {
			long n;

			if (!PyLong_Check(v))
				return fast_bad(c, f->name, "must be an integer, not ", v);
			n = PyLong_AsLong(v);
			if ((n == -1 && PyErr_Occurred()) || n > INT32_MAX || n < INT32_MIN)
				return fast_bad(c, f->name, "out of range", NULL);
			*(int *)to = (int)n;
			break;
		}
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- Recorder: one open sink's record call ----------------------------------------- */

typedef struct {
	PyObject_HEAD vgsink *sink; /* NULL once detached (closed, or another process's) */
	unsigned long long invalid; /* rows refused here, before the library saw them */
	unsigned long long closed;  /* rows offered after detach */
	fast_record_fn record;	    /* vgsink_record_sized */
	fast_errstr_fn errstr;
} FastRecorder;

static int fast_recorder_init(FastRecorder *self, PyObject *args, PyObject *kw)
{
	unsigned long long sink, rec, err;

	if (!PyArg_ParseTuple(args, "KKK", &sink, &rec, &err))
		return -1;
	self->sink = (vgsink *)(uintptr_t)sink;
	self->record = (fast_record_fn)(uintptr_t)rec;
	self->errstr = (fast_errstr_fn)(uintptr_t)err;
	return 0;
}

/* None when the row was taken, True when the library answered VGSINK_FULL (nothing
 * taken); otherwise the message naming the field. The GIL stays held
 * throughout, and nothing runs Python code between reading self->sink and
 * the call, so a detach (always before vgsink_close) never meets a call in
 * progress. */
static PyObject *fast_recorder_call(FastRecorder *self, PyObject *obj, unsigned flags)
{
	struct fast_conv c;
	vgsink_row row;
	PyObject *res;
	vgsink *s;
	int rc;

	c.nrefs = 0;
	c.json.p = c.json.local;
	c.err[0] = '\0';
	if (fast_convert(&c, obj, &row) != 0) {
		self->invalid++;
		res = PyUnicode_DecodeUTF8(c.err, (Py_ssize_t)strlen(c.err), "replace");
		fast_conv_done(&c);
		return res;
	}
	s = self->sink;
	if (!s) {
		self->closed++;
		fast_conv_done(&c);
		return PyUnicode_FromString("the sink is closed");
	}
	rc = self->record(s, &row, sizeof(row), flags);
	fast_conv_done(&c);
	if (rc == VGSINK_FULL)
		Py_RETURN_TRUE;
	if (rc != 0) {
		const char *e = self->errstr(s);

		return PyUnicode_DecodeUTF8(e, (Py_ssize_t)strlen(e), "replace");
	}
	Py_RETURN_NONE;
}

static PyObject *fast_recorder_record(FastRecorder *self, PyObject *obj)
{
	return fast_recorder_call(self, obj, 0);
}

static PyObject *fast_recorder_offer(FastRecorder *self, PyObject *obj)
{
	return fast_recorder_call(self, obj, VGSINK_RECORD_NO_DROP);
}

static PyObject *fast_recorder_detach(FastRecorder *self, PyObject *unused)
{
	self->sink = NULL;
	Py_RETURN_NONE;
}

static PyMethodDef fast_recorder_methods[] = {
	{ "record", (PyCFunction)fast_recorder_record, METH_O,
	  "record(obj) -> None, or the message naming the bad field" },
	{ "offer", (PyCFunction)fast_recorder_offer, METH_O,
	  "offer(obj) -> None (taken), True (the queue is full: nothing taken), or the message" },
	{ "detach", (PyCFunction)fast_recorder_detach, METH_NOARGS,
	  "forget the sink (before it is closed)" },
	{ NULL, NULL, 0, NULL },
};

static PyMemberDef fast_recorder_members[] = {
	{ "invalid", T_ULONGLONG, offsetof(FastRecorder, invalid), READONLY,
	  "rows refused before reaching the library" },
	{ "closed", T_ULONGLONG, offsetof(FastRecorder, closed), READONLY,
	  "rows offered after detach" },
	{ NULL, 0, 0, 0, NULL },
};

static PyTypeObject FastRecorderType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "vgsink._fast.Recorder",
	.tp_basicsize = sizeof(FastRecorder),
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)fast_recorder_init,
	.tp_methods = fast_recorder_methods,
	.tp_members = fast_recorder_members,
	.tp_doc = "Recorder(sink_address, vgsink_record_sized_address, vgsink_errstr_address)",
};

/* ---- log lines: sender thread -> Python, without the GIL ---------------------------- */

/* The sender thread must never wait for the GIL: os.fork() holds it while
 * libvgsink's fork handler waits for every sender to park. So the callback
 * only appends to this ring, and a Python thread takes lines out. */
#define FAST_LOG_LINES 256
#define FAST_LOG_BYTES 512
static pthread_mutex_t fast_log_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fast_log_cond = PTHREAD_COND_INITIALIZER;
static struct {
	int level;
	char msg[FAST_LOG_BYTES];
} fast_log_ring[FAST_LOG_LINES];
static unsigned fast_log_head, fast_log_count;
static unsigned long long fast_log_lost;

static void fast_log(int level, const char *msg, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&fast_log_lock);
	if (fast_log_count == FAST_LOG_LINES) {
		fast_log_lost++;
	} else {
		unsigned i = (fast_log_head + fast_log_count) % FAST_LOG_LINES;

		fast_log_ring[i].level = level;
		snprintf(fast_log_ring[i].msg, FAST_LOG_BYTES, "%s", msg);
		fast_log_count++;
	}
	pthread_cond_signal(&fast_log_cond);
	pthread_mutex_unlock(&fast_log_lock);
}

static void fast_log_atfork_child(void)
{
	pthread_mutex_init(&fast_log_lock, NULL);
	pthread_cond_init(&fast_log_cond, NULL);
}

static PyObject *fast_log_address(PyObject *m, PyObject *unused)
{
	return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)fast_log);
}

/* log_wait(timeout_s) -> ([(level, msg), ...], lines lost since the last call):
 * waits (without the GIL) up to timeout_s for a line. */
static PyObject *fast_log_wait(PyObject *m, PyObject *arg)
{
	double timeout = PyFloat_AsDouble(arg);
	struct {
		int level;
		char msg[FAST_LOG_BYTES];
	} * got;
	unsigned n = 0;
	unsigned long long lost;
	struct timespec ts;
	PyObject *list;

	if (timeout == -1.0 && PyErr_Occurred())
		return NULL;
	got = PyMem_RawMalloc(sizeof(*got) * FAST_LOG_LINES);
	if (!got)
		return PyErr_NoMemory();
	Py_BEGIN_ALLOW_THREADS clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)timeout;
	ts.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fast_log_lock);
	while (fast_log_count == 0 && fast_log_lost == 0)
		if (pthread_cond_timedwait(&fast_log_cond, &fast_log_lock, &ts) != 0)
			break;
	for (; fast_log_count > 0; fast_log_count--, n++) {
		got[n].level = fast_log_ring[fast_log_head].level;
		memcpy(got[n].msg, fast_log_ring[fast_log_head].msg, FAST_LOG_BYTES);
		fast_log_head = (fast_log_head + 1) % FAST_LOG_LINES;
	}
	lost = fast_log_lost;
	fast_log_lost = 0;
	pthread_mutex_unlock(&fast_log_lock);
	Py_END_ALLOW_THREADS list = PyList_New(n);
	for (unsigned i = 0; list && i < n; i++) {
		PyObject *t = Py_BuildValue("(is)", got[i].level, got[i].msg);

		if (!t) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, i, t);
	}
	PyMem_RawFree(got);
	if (!list)
		return NULL;
	return Py_BuildValue("(NK)", list, lost);
}

static PyMethodDef fast_methods[] = {
	{ "log_address", fast_log_address, METH_NOARGS,
	  "address of the C log callback to put in vgsink_config.log" },
	{ "log_wait", fast_log_wait, METH_O,
	  "log_wait(timeout_s) -> (lines, lost): the library's log lines" },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef fast_module = {
	PyModuleDef_HEAD_INIT, "vgsink._fast", "libvgsink's Python hot path", -1, fast_methods,
};

PyMODINIT_FUNC PyInit__fast(void);
PyMODINIT_FUNC PyInit__fast(void)
{
	PyObject *m, *json;

	for (size_t i = 0; i < FAST_NFIELDS; i++)
		if (!(fast_fields[i].key = PyUnicode_InternFromString(fast_fields[i].name)))
			return NULL;
	fast_dict_name = PyUnicode_InternFromString("__dict__");
	fast_value_name = PyUnicode_InternFromString("value");
	fast_timestamp_name = PyUnicode_InternFromString("timestamp");
	json = PyImport_ImportModule("json");
	if (!json)
		return NULL;
	fast_json_dumps = PyObject_GetAttrString(json, "dumps");
	Py_DECREF(json);
	if (!fast_json_dumps || PyType_Ready(&FastRecorderType) < 0)
		return NULL;
	pthread_atfork(NULL, NULL, fast_log_atfork_child);
	m = PyModule_Create(&fast_module);
	if (!m)
		return NULL;
	Py_INCREF(&FastRecorderType);
	if (PyModule_AddObject(m, "Recorder", (PyObject *)&FastRecorderType) < 0) {
		Py_DECREF(&FastRecorderType);
		Py_DECREF(m);
		return NULL;
	}
	PyModule_AddIntConstant(m, "ROW_SIZE", (long)sizeof(vgsink_row));
	return m;
}
