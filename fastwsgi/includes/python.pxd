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

cdef extern from *:
    """
    /* Empties a list of bytes, keeping its item array when it is small: the
       next response's few appends then allocate nothing, where `del l[:]` frees
       the array and the next append allocates it again. A large array (a long
       pipelined batch) is let go of, so an idle connection keeps only a few
       pointers. The items are bytes, whose release runs no Python code, so the
       list is not seen half-emptied. */
    #define FASTWSGI_LIST_KEPT 8
    static inline int fastwsgi_clear_bytes_list(PyObject* list) {
        PyListObject* items = (PyListObject*)list;
        Py_ssize_t i, n = Py_SIZE(list);
        if (items->allocated > FASTWSGI_LIST_KEPT) {
            return PyList_SetSlice(list, 0, n, NULL);
        }
        Py_SET_SIZE(list, 0);
        for (i = 0; i < n; i++) {
            Py_DECREF(items->ob_item[i]);
        }
        return 0;
    }
    """
    int clear_bytes_list "fastwsgi_clear_bytes_list"(list items) except -1
