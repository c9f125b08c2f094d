/* An insert's or update's Debezium event straight from pgoutput's TupleData (see
 * connectors/rowjson.py).
 *
 * The streaming hot path otherwise decodes every column to a Python str, converts it,
 * stores it in a dict, has orjson serialise the dict again and %-formats the event around
 * it: about 4 µs of the connector's ~8 µs per row. Here the text PostgreSQL sent is copied
 * into JSON directly for the common column forms, inside the event's frame; any other
 * column goes through its Python converter and orjson, so the output is byte for byte
 * what the Python path writes (tests/connectors/test_capture_rowjson.py compares the two).
 *
 * Encoder(columns, key, dumps, clock=None), one per table:
 *   columns: a tuple of (name_json: bytes, form: int, scale: int, converter, toast_json: bytes)
 *            per column, name_json being the JSON key with its colon, after a comma but for
 *            the first ('"id":', ',"code":'), form the column's codec.AS_*, scale a numeric's,
 *            toast_json what an unchanged TOASTed value is written as (codec.unavailable).
 *   key:     (index, head, tail): the record key is head + the JSON of column `index` +
 *            tail (envelope.TableSchema.key_json's bytes); None for a table without one.
 *   clock:   None for the system's real-time clock, or a function giving ns (tests).
 * .encode(payload, frame, lsn) → (event: bytes, key: bytes | None), or None when the row
 *   needs the Python path: a malformed tuple, text that is not UTF-8, or a value its
 *   converter rejects. That path then raises or reports exactly as it always did.
 *   frame: envelope.TransactionEvents.frame, the 9 literal parts around before (null
 *   here), after (the row), the LSN twice, the op ("c" for an insert, "u" for an update)
 *   and ts_ms, ts_us, ts_ns from the clock.
 * .produce(payload, frame, lsn, producer, topic, callback) → True once the record is
 *   handed to producer.produce(topic, event, key, -1, callback), False where encode gives
 *   None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

/* Column forms: keep in step with connectors/codec.py. */
enum { AS_TEXT = 0, AS_INT = 1, AS_BOOL = 2, AS_UTC_TIMESTAMP = 3, AS_DECIMAL = 4, BY_CONVERTER = 5 };

enum { OK = 0, FALLBACK = 1, FAILED = -1 };

/* Where the new tuple starts in an insert and in an update without an old tuple: after the
 * tag, the relation id and 'N'. */
#define TUPLE_DATA 6

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char inline_data[4096];
} Buf;

static int grow(Buf *b, Py_ssize_t extra);

/* Inlined: put and reserve run ~50 times per row. */
static inline __attribute__((always_inline)) int reserve(Buf *b, Py_ssize_t extra) {
    return b->len + extra <= b->cap ? OK : grow(b, extra);
}

static __attribute__((noinline)) int grow(Buf *b, Py_ssize_t extra) {
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->len + extra)
        cap *= 2;
    char *data;
    if (b->data == b->inline_data) {
        data = PyMem_Malloc(cap);
        if (data != NULL)
            memcpy(data, b->data, b->len);
    } else {
        data = PyMem_Realloc(b->data, cap);
    }
    if (data == NULL) {
        PyErr_NoMemory();
        return FAILED;
    }
    b->data = data;
    b->cap = cap;
    return OK;
}

static inline __attribute__((always_inline)) int put(Buf *b, const char *text, Py_ssize_t n) {
    if (reserve(b, n) != OK)
        return FAILED;
    memcpy(b->data + b->len, text, n);
    b->len += n;
    return OK;
}

/* A number's decimal text, written once and put as often as the event needs it. */
typedef struct {
    char text[24];
    int start;  /* the digits are text[start:] */
} Digits;

/* Two digits per division: the divisions are a serial chain, and the LSN and the clock
 * (up to 19 digits) took a sixth of the encoder's time one digit at a time. */
static const char PAIRS[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static void format_int64(Digits *d, long long value) {
    unsigned long long rest = value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value;
    d->start = sizeof d->text;
    while (rest >= 100) {
        unsigned pair = (unsigned)(rest % 100);
        rest /= 100;
        d->start -= 2;
        memcpy(d->text + d->start, PAIRS + 2 * pair, 2);
    }
    if (rest >= 10) {
        d->start -= 2;
        memcpy(d->text + d->start, PAIRS + 2 * rest, 2);
    } else {
        d->text[--d->start] = (char)('0' + rest);
    }
    if (value < 0)
        d->text[--d->start] = '-';
}

static int put_part(Buf *b, PyObject *frame, Py_ssize_t i) {
    PyObject *part = PyTuple_GET_ITEM(frame, i);
    return put(b, PyBytes_AS_STRING(part), PyBytes_GET_SIZE(part));
}

/* Length of the UTF-8 sequence at s, 0 when invalid (the rules of Python's strict decoder:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static int utf8_length(const unsigned char *s, Py_ssize_t n) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

#define BYTES8(c) (0x0101010101010101ULL * (c))
/* Of a word loaded from memory, the index of the first byte whose high bit is set. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define FIRST_MARKED(mask) (__builtin_clzll(mask) / 8)
#else
#define FIRST_MARKED(mask) (__builtin_ctzll(mask) / 8)
#endif

/* The high bit of each of 8 bytes that needs escaping or UTF-8 checking: a control
 * character, '"', '\\' or a byte >= 0x80 ("Bit Twiddling Hacks"' zero-byte tests). None is
 * missed; a byte above one that matched may be marked too (a borrow), which costs nothing:
 * a plain byte taken for special is copied by the byte-wise path all the same. */
static inline uint64_t special8(uint64_t x) {
    uint64_t quote = x ^ BYTES8('"'), backslash = x ^ BYTES8('\\');
    /* One "& ~v" for the three tests: '"' and '\\' are below 0x80, so quote and backslash
     * have x's high bits. */
    uint64_t found = ((x - BYTES8(0x20)) | (quote - BYTES8(1)) | (backslash - BYTES8(1))) & ~x;
    return (found | x) & BYTES8(0x80);
}

/* A JSON string escaped as orjson escapes it: \" \\ \b \f \n \r \t, other control
 * characters as \u00xx, everything else (DEL, non-ASCII) as is. */
static int put_string(Buf *b, const unsigned char *s, Py_ssize_t n) {
    static const char hex[] = "0123456789abcdef";
    if (reserve(b, n * 6 + 2) != OK)
        return FAILED;
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n;) {
        if (i + 8 <= n) {
            /* Eight bytes stored at once, kept up to the first that needs a look (room:
             * 6 per byte is reserved, and 8 bytes of input are left). Vietnamese text has
             * one every few bytes, so the ASCII between is not handled byte by byte. */
            uint64_t word;
            memcpy(&word, s + i, 8);
            memcpy(out, &word, 8);
            uint64_t special = special8(word);
            if (special == 0) {
                out += 8;
                i += 8;
                continue;
            }
            int plain = FIRST_MARKED(special);
            out += plain;
            i += plain;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            /* Byte by byte: gcc turns a memcpy of 2-4 bytes into `rep movsb`, whose start-up
             * cost perf charged a tenth of the encoder's samples to on Vietnamese text. */
            int length = utf8_length(s + i, n - i);
            if (length == 0)
                return FALLBACK;
            for (int k = 0; k < length; k++)
                *out++ = (char)s[i + k];
            i += length;
            continue;
        }
        i++;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': case '\\': *out++ = (char)c; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        default:
            *out++ = 'u'; *out++ = '0'; *out++ = '0';
            *out++ = hex[c >> 4]; *out++ = hex[c & 15];
        }
    }
    *out++ = '"';
    b->len = out - b->data;
    return OK;
}

/* int2/int4/int8/oid: PostgreSQL's text is already the JSON number. */
static int put_int(Buf *b, const unsigned char *s, Py_ssize_t n) {
    Py_ssize_t i = (n > 0 && s[0] == '-') ? 1 : 0;
    if (i == n || n > 20)
        return FALLBACK;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return FALLBACK;
    return put(b, (const char *)s, n);
}

/* timestamptz in a UTC session, '2024-06-12 01:30:00.5+00' → "2024-06-12T01:30:00.5Z"
 * (the same fast path as temporal.timestamptz_text; other values go to it). */
static int put_utc_timestamp(Buf *b, const unsigned char *s, Py_ssize_t n) {
    if (n < 22 || n > 32 || s[4] != '-' || memcmp(s + n - 3, "+00", 3) != 0)
        return FALLBACK;
    if (reserve(b, n + 2) != OK)
        return FAILED;
    /* Checked as copied, in one pass: a declined value leaves b->len where it was. Byte by
     * byte rather than memcpy: see put_string. */
    char *out = b->data + b->len;
    out[0] = '"';
    for (Py_ssize_t i = 0; i < n - 3; i++) {
        unsigned char c = s[i];
        if (!((unsigned)(c - '0') <= 9 || c == '-' || c == ':' || c == '.' || c == ' '))
            return FALLBACK;
        out[1 + i] = (char)c;
    }
    out[11] = 'T';
    out[n - 2] = 'Z';
    out[n - 1] = '"';
    b->len += n;
    return OK;
}

/* numeric(p, s) printed with exactly `scale` fraction digits → Connect's Decimal: base64 of
 * the unscaled integer, big-endian two's complement in the fewest bytes (as
 * types.unscaled_bytes). Up to 18 digits; longer values go to the Python converter. */
static int put_decimal(Buf *b, const unsigned char *s, Py_ssize_t n, long scale) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    Py_ssize_t i = (n > 0 && s[0] == '-') ? 1 : 0, point = -1, digits = 0;
    int64_t unscaled = 0;
    for (; i < n; i++) {
        if (s[i] == '.' && point < 0) {
            point = i;
        } else if (s[i] >= '0' && s[i] <= '9' && digits < 18) {
            unscaled = unscaled * 10 + (s[i] - '0');
            digits++;
        } else {
            return FALLBACK;
        }
    }
    if (digits == 0 || (point < 0 ? scale != 0 : n - point - 1 != scale))
        return FALLBACK;
    if (s[0] == '-')
        unscaled = -unscaled;
    unsigned char raw[9];
    int length = 1;
    for (int64_t rest = unscaled; rest >= 128 || rest < -128; rest >>= 8)
        length++;
    for (int k = length - 1, shift = 0; k >= 0; k--, shift += 8)  /* at most 8 bytes: < 10^18 */
        raw[k] = (unsigned char)((uint64_t)unscaled >> shift);
    if (reserve(b, 16) != OK)
        return FAILED;
    char *out = b->data + b->len;
    *out++ = '"';
    for (int k = 0; k < length; k += 3) {
        int left = length - k;
        uint32_t chunk = (uint32_t)raw[k] << 16 | (left > 1 ? (uint32_t)raw[k + 1] << 8 : 0)
                         | (left > 2 ? raw[k + 2] : 0);
        *out++ = alphabet[chunk >> 18 & 63];
        *out++ = alphabet[chunk >> 12 & 63];
        *out++ = left > 1 ? alphabet[chunk >> 6 & 63] : '=';
        *out++ = left > 2 ? alphabet[chunk & 63] : '=';
    }
    *out++ = '"';
    b->len = out - b->data;
    return OK;
}

/* Any other column: its Python converter, then orjson — what the Python path does. */
static int put_converted(Buf *b, const unsigned char *s, Py_ssize_t n, PyObject *converter,
                         PyObject *dumps) {
    PyObject *text = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
    if (text == NULL) {
        PyErr_Clear();
        return FALLBACK;
    }
    PyObject *value = converter == Py_None ? Py_NewRef(text) : PyObject_CallOneArg(converter, text);
    Py_DECREF(text);
    if (value == NULL) {
        if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_ArithmeticError)) {
            PyErr_Clear();
            return FALLBACK;
        }
        return FAILED;
    }
    PyObject *json = PyObject_CallOneArg(dumps, value);
    Py_DECREF(value);
    if (json == NULL)
        return FAILED;
    int result = PyBytes_Check(json) ? put(b, PyBytes_AS_STRING(json), PyBytes_GET_SIZE(json)) : FALLBACK;
    Py_DECREF(json);
    return result;
}

/* A column as the row loop reads it: flat, filled once when the encoder is made. */
typedef struct {
    const char *name;  /* name_json, inside the encoder's columns tuple */
    Py_ssize_t name_len;
    int form;
    long scale;
    PyObject *converter;  /* borrowed from that tuple too */
    const char *toast;    /* toast_json, likewise */
    Py_ssize_t toast_len;
} Col;

/* What an encoder's rows share. */
typedef struct {
    Col *cols;
    Py_ssize_t count, key_index;
    PyObject *dumps;
} Table;

static int put_value(Buf *b, const unsigned char *s, Py_ssize_t n, const Col *col, PyObject *dumps) {
    int result = FALLBACK;
    switch (col->form) {
    case AS_TEXT:
        return put_string(b, s, n);
    case AS_INT:
        result = put_int(b, s, n);
        break;
    case AS_BOOL:
        if (n == 1 && s[0] == 't')
            return put(b, "true", 4);
        if (n == 1 && s[0] == 'f')
            return put(b, "false", 5);
        break;
    case AS_UTC_TIMESTAMP:
        result = put_utc_timestamp(b, s, n);
        break;
    case AS_DECIMAL:
        result = put_decimal(b, s, n, col->scale);
        break;
    }
    return result == FALLBACK ? put_converted(b, s, n, col->converter, dumps) : result;
}

/* The row's JSON object; its key column's value is at [*key_start, *key_end). */
static int put_row(Buf *b, const unsigned char *buf, Py_ssize_t size, Py_ssize_t pos, const Table *t,
                   Py_ssize_t *key_start, Py_ssize_t *key_end) {
    if (pos < 0 || pos + 2 > size || ((buf[pos] << 8) | buf[pos + 1]) != t->count)
        return FALLBACK;
    pos += 2;
    if (put(b, "{", 1) != OK)
        return FAILED;
    for (Py_ssize_t i = 0; i < t->count; i++) {
        const Col *col = &t->cols[i];
        if (pos >= size)
            return FALLBACK;
        if (put(b, col->name, col->name_len) != OK)
            return FAILED;
        Py_ssize_t value_start = b->len;
        unsigned char kind = buf[pos];
        int result;
        if (kind == 't' && pos + 5 <= size) {
            Py_ssize_t length = (Py_ssize_t)((uint32_t)buf[pos + 1] << 24 | (uint32_t)buf[pos + 2] << 16
                                             | (uint32_t)buf[pos + 3] << 8 | buf[pos + 4]);
            if (length > size - pos - 5)
                return FALLBACK;
            result = put_value(b, buf + pos + 5, length, col, t->dumps);
            pos += 5 + length;
        } else if (kind == 'n') {
            result = put(b, "null", 4);
            pos += 1;
        } else if (kind == 'u') {
            result = put(b, col->toast, col->toast_len);
            pos += 1;
        } else {
            return FALLBACK;  /* binary or unknown: the Python path raises ProtocolError */
        }
        if (result != OK)
            return result;
        if (i == t->key_index) {
            *key_start = value_start;
            *key_end = b->len;
        }
    }
    return put(b, "}", 1);
}

/* head + value + tail in one new bytes object. */
static PyObject *wrap_key(PyObject *parts, const char *value, Py_ssize_t n) {
    PyObject *head = PyTuple_GET_ITEM(parts, 1), *tail = PyTuple_GET_ITEM(parts, 2);
    Py_ssize_t head_n = PyBytes_GET_SIZE(head), tail_n = PyBytes_GET_SIZE(tail);
    PyObject *key = PyBytes_FromStringAndSize(NULL, head_n + n + tail_n);
    if (key == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(key);
    memcpy(out, PyBytes_AS_STRING(head), head_n);
    memcpy(out + head_n, value, n);
    memcpy(out + head_n + n, PyBytes_AS_STRING(tail), tail_n);
    return key;
}

/* A tuple of 9 bytes objects (envelope.TransactionEvents.frame). */
static int valid_frame(PyObject *frame) {
    if (!PyTuple_Check(frame) || PyTuple_GET_SIZE(frame) != 9)
        return 0;
    for (Py_ssize_t i = 0; i < 9; i++)
        if (!PyBytes_Check(PyTuple_GET_ITEM(frame, i)))
            return 0;
    return 1;
}

/* One table's encoder: what its rows need, checked once when it is made. */
typedef struct {
    PyObject_HEAD
    PyObject *columns, *key, *clock;
    Table table;  /* its dumps held here, its cols pointing into columns */
} Encoder;

static PyObject *produce_name, *any_partition;

/* columns: (name_json: bytes, form: int, scale: int, converter, toast_json: bytes) each. */
static Col *flat_columns(PyObject *columns) {
    Py_ssize_t count = PyTuple_GET_SIZE(columns);
    Col *cols = PyMem_Calloc(count ? count : 1, sizeof(Col));
    if (cols == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *column = PyTuple_GET_ITEM(columns, i);
        if (!PyTuple_Check(column) || PyTuple_GET_SIZE(column) != 5 || !PyBytes_Check(PyTuple_GET_ITEM(column, 0))
                || !PyLong_Check(PyTuple_GET_ITEM(column, 1)) || !PyLong_Check(PyTuple_GET_ITEM(column, 2))
                || !PyBytes_Check(PyTuple_GET_ITEM(column, 4))) {
            PyErr_SetString(PyExc_TypeError,
                            "columns: (name_json: bytes, form: int, scale: int, converter, toast_json: bytes) each");
            PyMem_Free(cols);
            return NULL;
        }
        PyObject *name = PyTuple_GET_ITEM(column, 0);
        long form = PyLong_AsLong(PyTuple_GET_ITEM(column, 1)), scale;
        if ((form == -1 && PyErr_Occurred())
                || ((scale = PyLong_AsLong(PyTuple_GET_ITEM(column, 2))) == -1 && PyErr_Occurred())) {
            PyMem_Free(cols);
            return NULL;
        }
        PyObject *toast = PyTuple_GET_ITEM(column, 4);
        cols[i] = (Col){PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name), (int)form, scale,
                        PyTuple_GET_ITEM(column, 3), PyBytes_AS_STRING(toast), PyBytes_GET_SIZE(toast)};
    }
    return cols;
}

static int Encoder_clear(Encoder *self);

static int Encoder_init(Encoder *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"columns", "key", "dumps", "clock", NULL};
    PyObject *columns, *key, *dumps, *clock = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!OO|O", names, &PyTuple_Type, &columns, &key,
                                     &dumps, &clock))
        return -1;
    Py_ssize_t key_index = -1;
    if (key != Py_None) {
        if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 3 || !PyBytes_Check(PyTuple_GET_ITEM(key, 1))
                || !PyBytes_Check(PyTuple_GET_ITEM(key, 2))) {
            PyErr_SetString(PyExc_TypeError, "key: (index: int, head: bytes, tail: bytes) or None");
            return -1;
        }
        key_index = PyLong_AsSsize_t(PyTuple_GET_ITEM(key, 0));
        if (key_index == -1 && PyErr_Occurred())
            return -1;
        if (key_index < 0 || key_index >= PyTuple_GET_SIZE(columns)) {
            PyErr_SetString(PyExc_ValueError, "key: index out of the columns");
            return -1;
        }
    }
    Col *cols = flat_columns(columns);
    if (cols == NULL)
        return -1;
    Encoder_clear(self);  /* __init__ called again */
    self->columns = Py_NewRef(columns);
    self->key = Py_NewRef(key);
    self->clock = Py_NewRef(clock);
    self->table = (Table){cols, PyTuple_GET_SIZE(columns), key_index, Py_NewRef(dumps)};
    return 0;
}

static int Encoder_traverse(Encoder *self, visitproc visit, void *arg) {
    Py_VISIT(self->columns);
    Py_VISIT(self->key);
    Py_VISIT(self->clock);
    Py_VISIT(self->table.dumps);
    return 0;
}

static int Encoder_clear(Encoder *self) {
    PyMem_Free(self->table.cols);
    self->table.cols = NULL;
    self->table.count = 0;
    Py_CLEAR(self->table.dumps);
    Py_CLEAR(self->columns);
    Py_CLEAR(self->key);
    Py_CLEAR(self->clock);
    return 0;
}

static void Encoder_dealloc(Encoder *self) {
    PyObject_GC_UnTrack(self);
    Encoder_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Read here, not through time.time_ns: a call and two int conversions less per row. */
static int read_clock(Encoder *self, long long *now_ns) {
    if (self->clock == Py_None) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *now_ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        return OK;
    }
    PyObject *now = PyObject_CallNoArgs(self->clock);
    if (now == NULL)
        return FAILED;
    *now_ns = PyLong_AsLongLong(now);
    Py_DECREF(now);
    return *now_ns == -1 && PyErr_Occurred() ? FAILED : OK;
}

/* args[0:3] = payload, frame, lsn → *event and *key (None without a key column), or
 * FALLBACK (the row needs the Python path) or FAILED (an exception is set). */
static int build(Encoder *self, PyObject *const *args, PyObject **event, PyObject **key) {
    PyObject *payload = args[0], *frame = args[1];
    if (!PyBytes_Check(payload) || !valid_frame(frame)) {
        PyErr_SetString(PyExc_TypeError, "payload: bytes, frame: tuple of 9 bytes, lsn: int");
        return FAILED;
    }
    const unsigned char *buf = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t size = PyBytes_GET_SIZE(payload);
    long long lsn = PyLong_AsLongLong(args[2]), now_ns;
    if ((lsn == -1 && PyErr_Occurred()) || read_clock(self, &now_ns) != OK)
        return FAILED;
    const char *op = size > 0 && buf[0] == 'I' ? "c" : "u";

    Buf b;  /* not `= {…}`: that would zero the 4 kB inline buffer on every call */
    b.len = 0;
    b.cap = sizeof b.inline_data;
    b.data = b.inline_data;
    Py_ssize_t key_start = 0, key_end = 0;
    int result = put_part(&b, frame, 0);
    if (result == OK && (result = put(&b, "null", 4)) == OK && (result = put_part(&b, frame, 1)) == OK)
        result = put_row(&b, buf, size, TUPLE_DATA, &self->table, &key_start, &key_end);
    /* The parts after the row: the LSN twice (formatted once), the op, then ts_ms, ts_us
     * and ts_ns: the clock's digits without their last 6, without their last 3, and all
     * ("0" where that leaves none). */
    Digits lsn_text, ns_text;
    format_int64(&lsn_text, lsn);
    format_int64(&ns_text, now_ns);
    const char *lsn_s = lsn_text.text + lsn_text.start, *ns = ns_text.text + ns_text.start;
    Py_ssize_t lsn_len = (Py_ssize_t)sizeof lsn_text.text - lsn_text.start;
    Py_ssize_t ns_len = (Py_ssize_t)sizeof ns_text.text - ns_text.start;
    struct { const char *text; Py_ssize_t n; } parts[] = {
        {lsn_s, lsn_len},
        {lsn_s, lsn_len},
        {op, 1},
        {ns_len > 6 ? ns : "0", ns_len > 6 ? ns_len - 6 : 1},
        {ns_len > 3 ? ns : "0", ns_len > 3 ? ns_len - 3 : 1},
        {ns, ns_len}};
    for (int i = 0; i < 6 && result == OK; i++) {
        if ((result = put_part(&b, frame, 2 + i)) == OK)
            result = put(&b, parts[i].text, parts[i].n);
    }
    if (result == OK)
        result = put_part(&b, frame, 8);
    if (result == OK) {
        *event = PyBytes_FromStringAndSize(b.data, b.len);
        *key = self->table.key_index >= 0 ? wrap_key(self->key, b.data + key_start, key_end - key_start)
                                    : Py_NewRef(Py_None);
        if (*event == NULL || *key == NULL) {
            Py_CLEAR(*event);
            Py_CLEAR(*key);
            result = FAILED;
        }
    }
    if (b.data != b.inline_data)
        PyMem_Free(b.data);
    return result;
}

static PyObject *Encoder_encode(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "encode(payload, frame, lsn)");
        return NULL;
    }
    PyObject *event, *key;
    int result = build(self, args, &event, &key);
    if (result != OK)
        return result == FALLBACK ? Py_NewRef(Py_None) : NULL;
    PyObject *answer = PyTuple_Pack(2, event, key);
    Py_DECREF(event);
    Py_DECREF(key);
    return answer;
}

/* The record handed to producer.produce(topic, event, key, -1, callback) from here: no
 * tuple to build and unpack and no Python frame between the encoder and the producer. */
static PyObject *Encoder_produce(Encoder *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "produce(payload, frame, lsn, producer, topic, callback)");
        return NULL;
    }
    PyObject *event, *key;
    int result = build(self, args, &event, &key);
    if (result != OK)
        return result == FALLBACK ? Py_NewRef(Py_False) : NULL;
    PyObject *call[] = {args[3], args[4], event, key, any_partition, args[5]};
    PyObject *done = PyObject_VectorcallMethod(produce_name, call, 6 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(event);
    Py_DECREF(key);
    if (done == NULL)
        return NULL;
    Py_DECREF(done);
    return Py_NewRef(Py_True);
}

static PyMethodDef Encoder_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Encoder_encode, METH_FASTCALL,
     "encode(payload, frame, lsn) -> (event, key) | None"},
    {"produce", (PyCFunction)(void (*)(void))Encoder_produce, METH_FASTCALL,
     "produce(payload, frame, lsn, producer, topic, callback) -> bool: False when the row needs "
     "the Python path; what producer.produce raises (BufferError) propagates"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "connectors._rowjson.Encoder",
    .tp_doc = "Encoder(columns, key, dumps, clock=None): one table's inserts and "
              "updates from pgoutput TupleData to Debezium events (clock None: the system's).",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_traverse = (traverseproc)Encoder_traverse,
    .tp_clear = (inquiry)Encoder_clear,
    .tp_methods = Encoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "connectors._rowjson",
    .m_doc = "pgoutput TupleData to a Debezium event in one pass (see connectors/rowjson.py).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__rowjson(void) {
    if (PyType_Ready(&EncoderType) < 0)
        return NULL;
    produce_name = PyUnicode_InternFromString("produce");
    any_partition = PyLong_FromLong(-1);  /* librdkafka's RD_KAFKA_PARTITION_UA */
    if (produce_name == NULL || any_partition == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
