# C-API declarations the extensions share, each once (uvloop and httptools keep
# theirs the same way). Cython's own cpython/*.pxd lack these, or lack them in
# older releases of the Cython the build accepts.

from cpython.object cimport PyObject

cdef extern from "Python.h":
    # PEP 393: a str's code-unit width, units and length, read in place.
    int PyUnicode_1BYTE_KIND
    int PyUnicode_KIND(object text)
    void* PyUnicode_DATA(object text)
    Py_ssize_t PyUnicode_GET_LENGTH(object text)
    # A compact ASCII str: its units are its UTF-8 bytes.
    bint PyUnicode_IS_COMPACT_ASCII(object text)

    Py_ssize_t PyDict_GET_SIZE(object mapping)
    # A borrowed value, or NULL: missing (no exception set) or an error (set).
    # Cheaper than PyDict_GetItem, which saves and restores the exception state.
    PyObject* dict_lookup "PyDict_GetItemWithError"(object mapping, object key)
    PyObject* PyDict_SetDefault(object mapping, object key, object default_value) except NULL

cdef extern from *:
    """
    /* A dict with room for `minused` items: copies of it never resize. */
    static inline PyObject* fastwsgi_presized_dict(Py_ssize_t minused) {
    #if PY_VERSION_HEX < 0x030D0000
        return _PyDict_NewPresized(minused);
    #else
        (void)minused;
        return PyDict_New();
    #endif
    }
    """
    dict presized_dict "fastwsgi_presized_dict"(Py_ssize_t minused)
