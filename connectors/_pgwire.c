/* The replication stream read a burst at a time (see connectors/wire.py).
 *
 * psycopg2's ReplicationCursor.read_message() builds a ReplicationMessage per change: an
 * argument tuple, a parsed constructor call, a timestamp, attribute lookups for payload
 * and data_start. Over a backlog that was ~0.4 µs of the connector thread's ~3.5 µs per
 * row (a read-only loop over 200,000 changes: 0.9-1.0 against 0.5-0.6 µs per message).
 * Here libpq's PQgetCopyData is called directly on psycopg2's own connection and each
 * XLogData goes to `handle(payload, data_start)`.
 *
 * libpq is psycopg2's: psycopg2-binary ships a private copy, and a PGconn must only be
 * handed to the library that made it. bind(path) looks the functions up through the
 * already loaded psycopg2 extension at `path` (dlopen RTLD_NOLOAD, dlsym follows its
 * dependencies).
 *
 * read(pgconn, handle, limit) -> (status, wal_end, last, detail)
 *   status  MORE: `limit` messages handled; DRAINED: libpq has no whole message left and
 *           reading the socket gave none (as read_message() returning None); REPLY: the
 *           server asked for a status update now; ENDED: the server ended the stream,
 *           detail = (sqlstate or None, message) of its error, or None; BROKEN: the
 *           connection failed, detail = libpq's message.
 *   wal_end the last WAL position the server reported (XLogData or keepalive), 0 if none.
 *   last    the kind of the last message read: NONE, DATA or KEEPALIVE. A walsender that
 *           has decoded all the WAL there is sends a keepalive before it waits for more,
 *           so a keepalive after the last data says the server has nothing more for now.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>

enum { MORE = 0, DRAINED = 1, REPLY = 2, ENDED = 3, BROKEN = 4 };
enum { NONE = 0, DATA = 1, KEEPALIVE = 2 };

#define XLOGDATA_HEADER 25 /* 'w', dataStart, walEnd, sendTime */
#define KEEPALIVE_SIZE 18  /* 'k', walEnd, sendTime, replyRequested */
#define PGRES_FATAL_ERROR 7
#define PG_DIAG_SQLSTATE 'C'

static int (*get_copy_data)(void *, char **, int);
static int (*consume_input)(void *);
static void (*free_mem)(void *);
static void *(*get_result)(void *);
static int (*result_status)(const void *);
static char *(*result_error_message)(const void *);
static char *(*result_error_field)(const void *, int);
static void (*clear)(void *);
static char *(*error_message)(const void *);

static int find(void *lib, const char *name, void **fn) {
    *fn = dlsym(lib, name);
    if (*fn == NULL)
        PyErr_Format(PyExc_ImportError, "libpq function %s not found", name);
    return *fn == NULL ? -1 : 0;
}

static PyObject *bind(PyObject *self, PyObject *arg) {
    const char *path = PyUnicode_AsUTF8(arg);
    if (path == NULL)
        return NULL;
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (lib == NULL)
        return PyErr_Format(PyExc_ImportError, "%s is not loaded", path);
    int failed = find(lib, "PQgetCopyData", (void **)&get_copy_data)
        || find(lib, "PQconsumeInput", (void **)&consume_input)
        || find(lib, "PQfreemem", (void **)&free_mem)
        || find(lib, "PQgetResult", (void **)&get_result)
        || find(lib, "PQresultStatus", (void **)&result_status)
        || find(lib, "PQresultErrorMessage", (void **)&result_error_message)
        || find(lib, "PQresultErrorField", (void **)&result_error_field)
        || find(lib, "PQclear", (void **)&clear)
        || find(lib, "PQerrorMessage", (void **)&error_message);
    dlclose(lib); /* the extension stays loaded: psycopg2 holds it */
    if (failed) {
        get_copy_data = NULL;
        return NULL;
    }
    Py_RETURN_NONE;
}

static uint64_t be64(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | u[i];
    return v;
}

typedef struct {
    uint64_t wal_end;
    int last;
} Seen;

static PyObject *result(int status, const Seen *seen, PyObject *detail) {
    if (detail == NULL)
        return NULL;
    return Py_BuildValue("(iKiN)", status, (unsigned long long)seen->wal_end, seen->last, detail);
}

/* The stream ended: the server's error, as psycopg2's read_message() would raise it. */
static PyObject *ended(void *conn, const Seen *seen) {
    void *res = get_result(conn);
    PyObject *detail = res != NULL && result_status(res) == PGRES_FATAL_ERROR
        ? Py_BuildValue("(zs)", result_error_field(res, PG_DIAG_SQLSTATE), result_error_message(res))
        : Py_NewRef(Py_None);
    if (res != NULL)
        clear(res);
    return result(ENDED, seen, detail);
}

/* The connection failed: libpq's message, as psycopg2 raises it (OperationalError). */
static PyObject *broken(void *conn, const Seen *seen) {
    const char *message = error_message(conn);
    return result(BROKEN, seen, PyUnicode_DecodeUTF8(message, strlen(message), "replace"));
}

static PyObject *read_stream(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3)
        return PyErr_Format(PyExc_TypeError, "read(pgconn, handle, limit)");
    if (get_copy_data == NULL)
        return PyErr_Format(PyExc_RuntimeError, "bind() first");
    void *conn = PyLong_AsVoidPtr(args[0]);
    PyObject *handle = args[1];
    long limit = PyLong_AsLong(args[2]);
    if (PyErr_Occurred())
        return NULL;
    Seen seen = {0, NONE};
    int consumed = 0;
    for (long handled = 0; handled < limit;) {
        char *buf = NULL;
        int len = get_copy_data(conn, &buf, 1);
        if (len == 0) { /* as psycopg2: read the socket when libpq has nothing left */
            if (consumed)
                return result(DRAINED, &seen, Py_NewRef(Py_None));
            if (!consume_input(conn))
                return broken(conn, &seen);
            consumed = 1;
            continue;
        }
        consumed = 0; /* a read fills libpq's buffer (16 kB) at most: the socket may hold more */
        if (len == -1)
            return ended(conn, &seen);
        if (len < 0)
            return broken(conn, &seen);
        if (buf[0] == 'w' && len >= XLOGDATA_HEADER) {
            uint64_t start = be64(buf + 1), end = be64(buf + 9);
            if (end != 0) /* 0: a Relation message, sent ahead of its change */
                seen.wal_end = end;
            seen.last = DATA;
            PyObject *call[2] = {
                PyBytes_FromStringAndSize(buf + XLOGDATA_HEADER, len - XLOGDATA_HEADER),
                PyLong_FromUnsignedLongLong(start)};
            free_mem(buf);
            PyObject *done = NULL;
            if (call[0] != NULL && call[1] != NULL)
                done = PyObject_Vectorcall(handle, call, 2, NULL);
            Py_XDECREF(call[0]);
            Py_XDECREF(call[1]);
            if (done == NULL)
                return NULL;
            Py_DECREF(done);
            handled++;
        } else if (buf[0] == 'k' && len >= KEEPALIVE_SIZE) {
            int reply = buf[17];
            seen.wal_end = be64(buf + 1);
            seen.last = KEEPALIVE;
            free_mem(buf);
            if (reply)
                return result(REPLY, &seen, Py_NewRef(Py_None));
        } else {
            free_mem(buf);
            return result(BROKEN, &seen, PyUnicode_FromString(
                "unrecognized replication message type"));
        }
    }
    return result(MORE, &seen, Py_NewRef(Py_None));
}

static PyMethodDef methods[] = {
    {"bind", bind, METH_O, "bind(path of psycopg2's loaded extension)"},
    {"read", (PyCFunction)(void (*)(void))read_stream, METH_FASTCALL, "read(pgconn, handle, limit)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pgwire", NULL, -1, methods};

PyMODINIT_FUNC PyInit__pgwire(void) { return PyModule_Create(&module); }
