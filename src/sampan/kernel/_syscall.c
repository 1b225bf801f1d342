/* sampan.kernel._syscall: syscall(2) for Python, without ctypes.
 *
 * Every `sampan-runtime` command is a fresh interpreter, and importing ctypes (with its
 * shared library, struct and the C library's handle) costs about 4 ms of each start: as
 * much as the namespaces and mounts of a container together. The runtime needs nothing of
 * ctypes but a way to make a system call with integers, NULL and pointers to bytes, so
 * this module gives exactly that; `_ctypes_syscall.py` is the same interface on ctypes,
 * for an install without a C compiler.
 *
 *   syscall(nr, *args) -> int   the call's result, or -errno (the kernel's own convention)
 *   address(buffer) -> int      where a buffer's bytes are, for pointers inside structs
 *   getcpu() -> int             the CPU this thread runs on, read without a system call
 *
 * An argument is an int (a C long), None (NULL) or any object with the buffer protocol
 * (bytes, bytearray): a pointer to its bytes, held for the duration of the call. bytes
 * objects end with a NUL byte, so they serve as C strings. The GIL is released during the
 * call, as ctypes does.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <sched.h>
#include <unistd.h>
#include <sys/syscall.h>

#define MAX_ARGS 6

static PyObject *sys_syscall(PyObject *Py_UNUSED(module), PyObject *const *args,
                             Py_ssize_t nargs)
{
    long nr, values[MAX_ARGS] = {0};
    Py_buffer views[MAX_ARGS];
    int held[MAX_ARGS] = {0};
    long result;
    int saved_errno = 0;
    Py_ssize_t i;
    PyObject *out = NULL;

    if (nargs < 1 || nargs > MAX_ARGS + 1) {
        PyErr_SetString(PyExc_TypeError, "syscall(nr, *args): 0 to 6 arguments after nr");
        return NULL;
    }
    nr = PyLong_AsLong(args[0]);
    if (nr == -1 && PyErr_Occurred())
        return NULL;
    for (i = 1; i < nargs; i++) {
        PyObject *arg = args[i];
        if (arg == Py_None) {
            values[i - 1] = 0;
        } else if (PyLong_Check(arg)) {
            /* unsigned values above LONG_MAX (flags, masks) pass through as their bits */
            values[i - 1] = (long)PyLong_AsUnsignedLongMask(arg);
            if (PyErr_Occurred())
                goto done;
        } else if (PyObject_CheckBuffer(arg)) {
            if (PyObject_GetBuffer(arg, &views[i - 1], PyBUF_SIMPLE) < 0)
                goto done;
            held[i - 1] = 1;
            values[i - 1] = (long)views[i - 1].buf;
        } else {
            PyErr_Format(PyExc_TypeError, "syscall argument %zd: int, None or a buffer, "
                         "not %.100s", i, Py_TYPE(arg)->tp_name);
            goto done;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    result = syscall(nr, values[0], values[1], values[2], values[3], values[4], values[5]);
    if (result == -1)
        saved_errno = errno;
    Py_END_ALLOW_THREADS
    out = PyLong_FromLong(result == -1 ? -saved_errno : result);
done:
    for (i = 0; i < MAX_ARGS; i++)
        if (held[i])
            PyBuffer_Release(&views[i]);
    return out;
}

static PyObject *sys_address(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    void *where;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    where = view.buf;
    PyBuffer_Release(&view);
    return PyLong_FromVoidPtr(where);
}

/* sched_getcpu(3) reads the vDSO (or rseq). getcpu(2) through syscall() would be a system
 * call, and the return from one is where the kernel may switch to the child just forked
 * onto this CPU, before runtime/affinity.py has moved it elsewhere. */
static PyObject *sys_getcpu(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(noargs))
{
    int cpu = sched_getcpu();
    if (cpu < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(cpu);
}

static PyMethodDef methods[] = {
    {"syscall", (PyCFunction)(void (*)(void))sys_syscall, METH_FASTCALL,
     "syscall(nr, *args) -> result, or -errno"},
    {"address", sys_address, METH_O,
     "address(buffer) -> the address of its bytes (valid while the buffer lives)"},
    {"getcpu", sys_getcpu, METH_NOARGS, "getcpu() -> the CPU this thread runs on"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sampan.kernel._syscall",
    "syscall(2) without ctypes (see _syscall.c)", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__syscall(void)
{
    return PyModule_Create(&module);
}
