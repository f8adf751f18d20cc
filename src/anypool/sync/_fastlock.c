/* anypool.sync._fastlock: the C core of anypool.sync.Lock and RLock.
 *
 * Why C: an uncontended acquire/release of threading.Lock is two C calls (~30 ns each);
 * any Python-level method costs a frame (~100 ns), so a pure-Python wrapper cannot stay
 * within 1.5x of it. This core does, in C, what the wrapper did in Python:
 *
 *   plain mode (lock checking and the watchdog off; the default)
 *       try the lock without blocking and count; only a failed try (contention) takes
 *       the slow path, which releases the GIL while it waits and times the wait.
 *   tracked mode (lock checking or the watchdog on; set_mode() says which)
 *       also keeps, per thread, the list of locks it holds (a ThreadState, stored in the
 *       interpreter's per-thread dictionary), records the holder and the hold time, and
 *       calls back into Python only where Python has work to do:
 *         checker.before_acquire(lock, state, forever)  when the thread already holds a
 *                                                       lock (a lock order to check);
 *         dump(lock, seconds)                           when a wait passes the watchdog's
 *                                                       limit (prints every thread).
 *
 * Everything else (names, stats() records, the lock-order graph, the report) stays in
 * Python (_locks.py, _check.py, _watchdog.py). _pycore.py is the same core in pure
 * Python, used where this module is not built or cannot be imported.
 *
 * Only the documented C API is used. Blocking waits use PyThread_acquire_lock_timed
 * with intr_flag=1 and retry after running signal handlers, as CPython's own lock does,
 * so that Ctrl-C interrupts a blocked acquire.
 *
 * Concurrency: every field is read and written with the GIL held (the GIL is released
 * only around the blocking PyThread_acquire_lock_timed call, which touches no field).
 * That is why this module refuses to load on a free-threaded (no-GIL) build: there the
 * pure-Python core is used instead.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <math.h>
#include <time.h>

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_T_BOOL T_BOOL
#define Py_T_PYSSIZET T_PYSSIZET
#define Py_T_ULONG T_ULONG
#define Py_READONLY READONLY
#endif

/* ---- module state (one interpreter; set from Python by configure/set_mode) ---------- */

static int tracking = 0;              /* lock checking or the watchdog is on */
static Py_ssize_t generation = 0;     /* _state.generation: bumped per tracked period */
static PyObject *checker = NULL;      /* the active _check.Checker, or NULL */
static double watchdog_limit = 0.0;   /* seconds; <= 0: the watchdog is off */
static PyObject *threads_registry = NULL; /* _state.threads: ident -> ThreadState */
static PyObject *dump_function = NULL;    /* _watchdog.dump(lock, seconds) */

static PyObject *str_state_key = NULL;      /* our key in PyThreadState_GetDict() */
static PyObject *str_before_acquire = NULL;
static PyObject *str_reentrant = NULL;

/* perf_counter's clock on Linux, so that times here and in Python compare. */
static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- ThreadState: the locks one thread holds ---------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *held;          /* list of the tracked locks held, in acquisition order */
    PyObject *waiting;       /* the lock this thread waits for, or None */
    Py_ssize_t generation;   /* the tracked period `held` belongs to */
    unsigned long ident;     /* threading.get_ident() of the thread */
    char busy;               /* True while the checker records: its locks are not checked */
} ThreadState;

static int
ThreadState_traverse(ThreadState *self, visitproc visit, void *arg)
{
    Py_VISIT(self->held);
    Py_VISIT(self->waiting);
    return 0;
}

static int
ThreadState_clear(ThreadState *self)
{
    Py_CLEAR(self->held);
    Py_CLEAR(self->waiting);
    return 0;
}

static void
ThreadState_dealloc(ThreadState *self)
{
    PyObject_GC_UnTrack(self);
    ThreadState_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef ThreadState_members[] = {
    {"held", Py_T_OBJECT_EX, offsetof(ThreadState, held), Py_READONLY,
     "The tracked locks this thread holds, in acquisition order."},
    {"waiting", Py_T_OBJECT_EX, offsetof(ThreadState, waiting), Py_READONLY,
     "The lock this thread waits for, or None."},
    {"generation", Py_T_PYSSIZET, offsetof(ThreadState, generation), Py_READONLY,
     "The tracked period `held` belongs to."},
    {"ident", Py_T_ULONG, offsetof(ThreadState, ident), Py_READONLY,
     "The thread's identifier (threading.get_ident())."},
    {"busy", Py_T_BOOL, offsetof(ThreadState, busy), 0,
     "True while the lock-order checker runs in this thread."},
    {NULL}};

static PyTypeObject ThreadStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "anypool.sync._fastlock.ThreadState",
    .tp_doc = "One thread's view: the tracked locks it holds, in acquisition order.",
    .tp_basicsize = sizeof(ThreadState),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)ThreadState_traverse,
    .tp_clear = (inquiry)ThreadState_clear,
    .tp_dealloc = (destructor)ThreadState_dealloc,
    .tp_members = ThreadState_members,
};

static ThreadState *
new_thread_state(void)
{
    ThreadState *state = PyObject_GC_New(ThreadState, &ThreadStateType);
    if (state == NULL) {
        return NULL;
    }
    state->held = PyList_New(0);
    state->waiting = Py_NewRef(Py_None);
    state->generation = generation;
    state->ident = PyThread_get_thread_ident();
    state->busy = 0;
    PyObject_GC_Track(state);
    if (state->held == NULL) {
        Py_DECREF(state);
        return NULL;
    }
    return state;
}

/* Make `state` known to the watchdog's report (_state.threads[ident] = state). */
static int
register_thread_state(ThreadState *state)
{
    if (threads_registry == NULL) {
        return 0;
    }
    PyObject *ident = PyLong_FromUnsignedLong(state->ident);
    if (ident == NULL) {
        return -1;
    }
    int result = PyDict_SetItem(threads_registry, ident, (PyObject *)state);
    Py_DECREF(ident);
    return result;
}

/* The calling thread's state (a new reference), created on first use and emptied when
 * tracking was switched off and on since: what was recorded then is gone. */
static ThreadState *
current_state(void)
{
    PyObject *dict = PyThreadState_GetDict();
    if (dict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "anypool.sync: no Python thread state");
        return NULL;
    }
    ThreadState *state;
    PyObject *found = PyDict_GetItemWithError(dict, str_state_key); /* borrowed */
    if (found != NULL && Py_IS_TYPE(found, &ThreadStateType)) {
        state = (ThreadState *)Py_NewRef(found);
    }
    else {
        if (PyErr_Occurred()) {
            return NULL;
        }
        state = new_thread_state();
        if (state == NULL) {
            return NULL;
        }
        if (PyDict_SetItem(dict, str_state_key, (PyObject *)state) < 0 ||
            register_thread_state(state) < 0) {
            Py_DECREF(state);
            return NULL;
        }
    }
    if (state->generation != generation) {
        PyObject *fresh = PyList_New(0);
        if (fresh == NULL) {
            Py_DECREF(state);
            return NULL;
        }
        Py_SETREF(state->held, fresh);
        state->generation = generation;
    }
    return state;
}

/* ---- waiting for the underlying lock ------------------------------------------------ */

/* Acquire `lock` within `timeout` seconds (< 0: forever, 0: do not wait), releasing the
 * GIL while blocked. PY_LOCK_INTR means a signal handler raised (the exception is set);
 * a handler that returns normally lets the wait go on, with the time left. This is
 * CPython's acquire_timed (Modules/_threadmodule.c), over the public API. */
static PyLockStatus
acquire_timed(PyThread_type_lock lock, double timeout)
{
    double deadline = timeout > 0 ? now() + timeout : 0.0;
    for (;;) {
        PyLockStatus status = PyThread_acquire_lock_timed(lock, 0, 0);
        if (status == PY_LOCK_FAILURE && timeout != 0) {
            PY_TIMEOUT_T microseconds =
                timeout < 0 ? -1 : (PY_TIMEOUT_T)ceil(timeout * 1e6);
            Py_BEGIN_ALLOW_THREADS
            status = PyThread_acquire_lock_timed(lock, microseconds, 1);
            Py_END_ALLOW_THREADS
        }
        if (status != PY_LOCK_INTR) {
            return status;
        }
        if (Py_MakePendingCalls() < 0) {
            return PY_LOCK_INTR;
        }
        if (timeout > 0) {
            timeout = deadline - now();
            if (timeout < 0) {
                return PY_LOCK_FAILURE;
            }
        }
    }
}

/* ---- LockCore ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    char reentrant;            /* an RLock: its owner may acquire it again */
    char locked;               /* the underlying lock is held */
    unsigned long owner;       /* RLock: ident of the owning thread (count > 0) */
    unsigned long count;       /* RLock: recursion depth */
    Py_ssize_t acquisitions;
    Py_ssize_t contended;
    Py_ssize_t timeouts;
    double wait_total;
    double wait_max;
    double hold_max;           /* < 0: never measured */
    double acquired_at;        /* tracked mode: when the holder took it */
    PyObject *holder;          /* tracked mode: the holder's ThreadState, or NULL */
    Py_ssize_t holder_generation;
    PyObject *weakreflist;
} LockCore;

static PyTypeObject LockCoreType;

static PyObject *
LockCore_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    /* The subclass's __init__ takes the arguments (name=...); `_reentrant`, a class
     * attribute of the subclass, says which kind of lock it is. */
    int reentrant = 0;
    PyObject *flag = PyObject_GetAttr((PyObject *)type, str_reentrant);
    if (flag == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            return NULL;
        }
        PyErr_Clear();
    }
    else {
        reentrant = PyObject_IsTrue(flag);
        Py_DECREF(flag);
        if (reentrant < 0) {
            return NULL;
        }
    }
    LockCore *self = (LockCore *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "cannot allocate lock");
        return NULL;
    }
    self->reentrant = (char)reentrant;
    self->hold_max = -1.0;
    return (PyObject *)self;
}

static int
LockCore_traverse(LockCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->holder);
    return 0;
}

static int
LockCore_clear(LockCore *self)
{
    Py_CLEAR(self->holder);
    return 0;
}

static void
LockCore_dealloc(LockCore *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    LockCore_clear(self);
    if (self->lock != NULL) {
        if (self->locked) {
            PyThread_release_lock(self->lock);
        }
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* -- bookkeeping shared by both modes -- */

/* The underlying lock was just taken by thread `ident` (only read for an RLock). */
static inline void
mark_taken(LockCore *self, unsigned long ident)
{
    self->locked = 1;
    self->owner = ident;
    self->count = 1;
}

/* The watchdog's report: an acquisition of `self` has waited `seconds`. */
static int
report_stuck(LockCore *self, double seconds)
{
    if (dump_function == NULL) {
        return 0;
    }
    PyObject *waited = PyFloat_FromDouble(seconds);
    if (waited == NULL) {
        return -1;
    }
    PyObject *result =
        PyObject_CallFunctionObjArgs(dump_function, (PyObject *)self, waited, NULL);
    Py_DECREF(waited);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* The lock was contended: wait for it (with the watchdog's report if it takes too
 * long) and time the wait. 1: acquired, 0: gave up (counted), -1: exception set. */
static int
acquire_slow(LockCore *self, double timeout, ThreadState *me)
{
    if (timeout == 0) {
        self->timeouts++;
        return 0;
    }
    if (me != NULL) {
        Py_SETREF(me->waiting, Py_NewRef((PyObject *)self));
    }
    double start = now();
    double limit = watchdog_limit;
    PyLockStatus status;
    if (limit <= 0 || (timeout > 0 && timeout <= limit)) {
        status = acquire_timed(self->lock, timeout);
    }
    else {
        /* Wait in two parts: up to the limit, then (after the report) the rest. */
        status = acquire_timed(self->lock, limit);
        if (status == PY_LOCK_FAILURE) {
            status = report_stuck(self, limit) < 0
                         ? PY_LOCK_INTR
                         : acquire_timed(self->lock, timeout < 0 ? -1 : timeout - limit);
        }
    }
    double waited = now() - start;
    if (me != NULL) {
        Py_SETREF(me->waiting, Py_NewRef(Py_None));
    }
    if (status == PY_LOCK_INTR) {
        return -1;
    }
    if (status != PY_LOCK_ACQUIRED) {
        self->timeouts++;
        return 0;
    }
    /* We hold the lock now, so these updates cannot race. */
    self->acquisitions++;
    self->contended++;
    self->wait_total += waited;
    if (waited > self->wait_max) {
        self->wait_max = waited;
    }
    return 1;
}

/* -- tracked mode -- */

/* Ask the checker about the order "every lock `me` holds, then `self`". Only when the
 * thread holds a lock: with none held there is no order to check. */
static int
check_order(LockCore *self, ThreadState *me, int forever)
{
    if (checker == NULL || me->busy || PyList_GET_SIZE(me->held) == 0) {
        return 0;
    }
    PyObject *active = Py_NewRef(checker); /* set_mode may replace it meanwhile */
    PyObject *result = PyObject_CallMethodObjArgs(
        active, str_before_acquire, (PyObject *)self, (PyObject *)me,
        forever ? Py_True : Py_False, NULL);
    Py_DECREF(active);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* Record that `me` holds `self` now. */
static int
took(LockCore *self, ThreadState *me)
{
    if (PyList_Append(me->held, (PyObject *)self) < 0) {
        return -1;
    }
    Py_XSETREF(self->holder, Py_NewRef((PyObject *)me));
    self->holder_generation = generation;
    self->acquired_at = now();
    return 0;
}

/* About to be released for good: note the hold time and drop the lock from its
 * holder's list (the holder's, not the caller's: a Lock may be released by any
 * thread). Returns the holder reference for the caller to drop after the release. */
static PyObject *
forget(LockCore *self)
{
    PyObject *holder = self->holder;
    self->holder = NULL;
    if (holder == NULL || self->holder_generation != generation) {
        return holder; /* never recorded, or recorded in an earlier tracked period */
    }
    double hold = now() - self->acquired_at;
    if (hold > self->hold_max) {
        self->hold_max = hold;
    }
    /* Search from the end: it is usually the last lock taken. (held is NULL only if
     * the GC cleared the state, which it cannot while this lock refers to it.) */
    PyObject *held = ((ThreadState *)holder)->held;
    for (Py_ssize_t i = held == NULL ? -1 : PyList_GET_SIZE(held) - 1; i >= 0; i--) {
        if (PyList_GET_ITEM(held, i) == (PyObject *)self) {
            if (PyList_SetSlice(held, i, i + 1, NULL) < 0) {
                PyErr_Clear(); /* shrinking a list does not fail; nothing to undo */
            }
            break;
        }
    }
    return holder;
}

static PyObject *
tracked_acquire(LockCore *self, double timeout, unsigned long ident)
{
    ThreadState *me = current_state();
    if (me == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    if (check_order(self, me, timeout < 0) < 0) {
        goto done;
    }
    if (PyThread_acquire_lock_timed(self->lock, 0, 0) == PY_LOCK_ACQUIRED) {
        self->acquisitions++;
    }
    else {
        int got = acquire_slow(self, timeout, me);
        if (got <= 0) {
            result = got < 0 ? NULL : Py_NewRef(Py_False);
            goto done;
        }
    }
    mark_taken(self, ident);
    if (took(self, me) < 0) {
        self->locked = 0;
        self->count = 0;
        self->owner = 0;
        PyThread_release_lock(self->lock);
        goto done;
    }
    result = Py_NewRef(Py_True);
done:
    Py_DECREF(me);
    return result;
}

/* -- acquire / release -- */

/* timeout: < 0 forever, 0 non-blocking, > 0 seconds (already validated). */
static PyObject *
acquire(LockCore *self, double timeout)
{
    unsigned long ident = 0;
    if (self->reentrant) {
        ident = PyThread_get_thread_ident();
        if (self->count > 0 && self->owner == ident) {
            /* Re-entry by the owner: no new lock order, nothing to wait for. */
            if (self->count == ULONG_MAX) {
                PyErr_SetString(PyExc_OverflowError, "Internal lock count overflowed");
                return NULL;
            }
            self->count++;
            self->acquisitions++;
            Py_RETURN_TRUE;
        }
    }
    if (tracking) {
        return tracked_acquire(self, timeout, ident);
    }
    if (PyThread_acquire_lock_timed(self->lock, 0, 0) == PY_LOCK_ACQUIRED) {
        self->acquisitions++;
    }
    else {
        int got = acquire_slow(self, timeout, NULL);
        if (got <= 0) {
            return got < 0 ? NULL : Py_NewRef(Py_False);
        }
    }
    mark_taken(self, ident);
    Py_RETURN_TRUE;
}

static int
keyword_is(PyObject *name, const char *expected)
{
    return PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, expected) == 0;
}

/* acquire(blocking=True, timeout=-1), with threading.Lock.acquire's checks and errors.
 * Sets *timeout as acquire() wants it. */
static int
parse_acquire_args(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                   double *timeout)
{
    PyObject *blocking_arg = nargs > 0 ? args[0] : NULL;
    PyObject *timeout_arg = nargs > 1 ? args[1] : NULL;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "acquire() takes at most 2 arguments (%zd given)",
                     nargs);
        return -1;
    }
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        PyObject **slot = keyword_is(name, "blocking") ? &blocking_arg
                          : keyword_is(name, "timeout") ? &timeout_arg : NULL;
        if (slot == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "'%S' is an invalid keyword argument for acquire()", name);
            return -1;
        }
        if (*slot != NULL) {
            PyErr_Format(PyExc_TypeError,
                         "argument for acquire() given by name ('%S') and position (%d)",
                         name, slot == &blocking_arg ? 1 : 2);
            return -1;
        }
        *slot = args[nargs + i];
    }
    int blocking = 1;
    if (blocking_arg != NULL && (blocking = PyObject_IsTrue(blocking_arg)) < 0) {
        return -1;
    }
    double seconds = -1;
    if (timeout_arg != NULL) {
        seconds = PyFloat_AsDouble(timeout_arg);
        if (seconds == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (isnan(seconds)) {
            PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
            return -1;
        }
    }
    if (!blocking && seconds != -1) {
        PyErr_SetString(PyExc_ValueError, "can't specify a timeout for a non-blocking call");
        return -1;
    }
    if (seconds < 0 && seconds != -1) {
        PyErr_SetString(PyExc_ValueError, "timeout value must be a non-negative number");
        return -1;
    }
    if (seconds > 0 && ceil(seconds * 1e6) > (double)PY_TIMEOUT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "timeout value is too large");
        return -1;
    }
    /* A blocking acquire with timeout=0 is a non-blocking try, as in threading. */
    *timeout = blocking ? seconds : 0;
    return 0;
}

static PyObject *
LockCore_acquire(LockCore *self, PyObject *const *args, Py_ssize_t nargs,
                 PyObject *kwnames)
{
    double timeout = -1;
    if ((nargs != 0 || kwnames != NULL) &&
        parse_acquire_args(args, nargs, kwnames, &timeout) < 0) {
        return NULL;
    }
    return acquire(self, timeout);
}

static PyObject *
LockCore_enter(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    return acquire(self, -1);
}

static PyObject *
LockCore_release(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->reentrant) {
        if (self->count == 0 || self->owner != PyThread_get_thread_ident()) {
            PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
            return NULL;
        }
        if (self->count > 1) {
            self->count--;
            Py_RETURN_NONE;
        }
    }
    else if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    /* holder is set only by a tracked acquisition; the branch costs nothing in plain
     * mode, and a lock acquired while tracking was on is forgotten properly. */
    PyObject *holder = self->holder != NULL ? forget(self) : NULL;
    self->count = 0;
    self->owner = 0;
    self->locked = 0;
    PyThread_release_lock(self->lock);
    Py_XDECREF(holder);
    Py_RETURN_NONE;
}

static PyObject *
LockCore_exit(LockCore *self, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(n))
{
    return LockCore_release(self, NULL);
}

static PyObject *
LockCore_locked(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->locked);
}

/* -- what the Python side reads -- */

static PyObject *
LockCore_snapshot(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(nnnddd)", self->acquisitions, self->contended, self->timeouts,
                         self->wait_total, self->wait_max, self->hold_max);
}

static PyObject *
LockCore_holder_ident(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!tracking || self->holder == NULL || self->holder_generation != generation) {
        Py_RETURN_NONE;
    }
    return PyLong_FromUnsignedLong(((ThreadState *)self->holder)->ident);
}

static PyObject *
LockCore_at_fork_reinit(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    /* After fork only the forking thread exists: the lock is free and unowned. The old
     * lock may be in an inconsistent state (another thread was inside it at the fork),
     * so it is neither used nor freed: leaked on purpose, as CPython's own locks do. */
    PyThread_type_lock fresh = PyThread_allocate_lock();
    if (fresh == NULL) {
        PyErr_SetString(PyExc_MemoryError, "cannot allocate lock");
        return NULL;
    }
    self->lock = fresh;
    self->locked = 0;
    self->count = 0;
    self->owner = 0;
    Py_CLEAR(self->holder);
    Py_RETURN_NONE;
}

/* -- RLock's part of the protocol threading.Condition uses -- */

static PyObject *
LockCore_rlock_is_owned(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->count > 0 && self->owner == PyThread_get_thread_ident());
}

static PyObject *
LockCore_rlock_recursion_count(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    int mine = self->count > 0 && self->owner == PyThread_get_thread_ident();
    return PyLong_FromUnsignedLong(mine ? self->count : 0);
}

/* Condition.wait: release completely, whatever the depth; returns what restores it. */
static PyObject *
LockCore_rlock_release_save(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    if (self->count == 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    unsigned long count = self->count;
    unsigned long owner = self->owner;
    PyObject *holder = owner == PyThread_get_thread_ident() ? forget(self) : NULL;
    self->count = 0;
    self->owner = 0;
    self->locked = 0;
    PyThread_release_lock(self->lock);
    Py_XDECREF(holder);
    return Py_BuildValue("(kk)", count, owner);
}

/* Condition.wait, woken: re-acquire at the saved depth (uninterruptibly, as CPython's
 * RLock does: the waiter must get its lock back before anything else runs). */
static PyObject *
LockCore_rlock_acquire_restore(LockCore *self, PyObject *saved)
{
    unsigned long count, owner;
    if (!PyArg_ParseTuple(saved, "kk:_acquire_restore", &count, &owner)) {
        return NULL;
    }
    ThreadState *me = NULL;
    if (tracking) {
        if ((me = current_state()) == NULL) {
            return NULL;
        }
        if (check_order(self, me, 1) < 0) {
            Py_DECREF(me);
            return NULL;
        }
    }
    if (PyThread_acquire_lock_timed(self->lock, 0, 0) != PY_LOCK_ACQUIRED) {
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock_timed(self->lock, -1, 0);
        Py_END_ALLOW_THREADS
    }
    self->locked = 1;
    self->owner = owner;
    self->count = count;
    self->acquisitions++;
    int failed = me != NULL && took(self, me) < 0;
    Py_XDECREF(me);
    if (failed) {
        return NULL; /* the lock is held, as the caller expects; only not recorded */
    }
    Py_RETURN_NONE;
}

static PyMethodDef LockCore_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))LockCore_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire($self, /, blocking=True, timeout=-1)\n--\n\n"
     "Acquire the lock, as threading.Lock.acquire: block (for at most ``timeout``\n"
     "seconds, if given) unless ``blocking`` is false; True if acquired.\n\n"
     "With lock checking on, an acquisition that inverts an earlier lock order is\n"
     "reported first (a warning, or LockOrderError in strict mode)."},
    {"release", (PyCFunction)LockCore_release, METH_NOARGS,
     "release($self, /)\n--\n\n"
     "Release the lock; RuntimeError if it is not held (as threading's)."},
    {"__enter__", (PyCFunction)LockCore_enter, METH_NOARGS,
     "__enter__($self, /)\n--\n\nAcquire the lock, waiting as long as it takes."},
    {"__exit__", (PyCFunction)(void (*)(void))LockCore_exit, METH_FASTCALL,
     "__exit__($self, /, *exc_info)\n--\n\nRelease the lock."},
    {"locked", (PyCFunction)LockCore_locked, METH_NOARGS,
     "locked($self, /)\n--\n\nTrue if some thread holds the lock."},
    {"_snapshot", (PyCFunction)LockCore_snapshot, METH_NOARGS,
     "(acquisitions, contended, timeouts, total wait, max wait, max hold or -1)"},
    {"_holder_ident", (PyCFunction)LockCore_holder_ident, METH_NOARGS,
     "Ident of the holding thread while tracking, if recorded in this tracked period."},
    {"_at_fork_reinit", (PyCFunction)LockCore_at_fork_reinit, METH_NOARGS,
     "After fork: a fresh, unlocked, unowned lock."},
    {"_rlock_is_owned", (PyCFunction)LockCore_rlock_is_owned, METH_NOARGS,
     "RLock: True if the calling thread holds it."},
    {"_rlock_recursion_count", (PyCFunction)LockCore_rlock_recursion_count, METH_NOARGS,
     "RLock: the calling thread's recursion depth (0 if it does not hold it)."},
    {"_rlock_release_save", (PyCFunction)LockCore_rlock_release_save, METH_NOARGS,
     "RLock: release completely; return the state _rlock_acquire_restore takes."},
    {"_rlock_acquire_restore", (PyCFunction)LockCore_rlock_acquire_restore, METH_O,
     "RLock: re-acquire to the state _rlock_release_save returned."},
    {NULL}};

static PyTypeObject LockCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "anypool.sync._fastlock.LockCore",
    .tp_doc = "The C core of anypool.sync.Lock and RLock (subclass it; the subclass's\n"
              "``_reentrant`` class attribute says which of the two it is).",
    .tp_basicsize = sizeof(LockCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = LockCore_new,
    .tp_traverse = (traverseproc)LockCore_traverse,
    .tp_clear = (inquiry)LockCore_clear,
    .tp_dealloc = (destructor)LockCore_dealloc,
    .tp_weaklistoffset = offsetof(LockCore, weakreflist),
    .tp_methods = LockCore_methods,
};

/* ---- module functions ---------------------------------------------------------------- */

static PyObject *
fastlock_configure(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *threads, *dump;
    if (!PyArg_ParseTuple(args, "O!O:configure", &PyDict_Type, &threads, &dump)) {
        return NULL;
    }
    if (!PyCallable_Check(dump)) {
        PyErr_Format(PyExc_TypeError, "dump must be callable, got %R", dump);
        return NULL;
    }
    Py_XSETREF(threads_registry, Py_NewRef(threads));
    Py_XSETREF(dump_function, Py_NewRef(dump));
    Py_RETURN_NONE;
}

static PyObject *
fastlock_set_mode(PyObject *Py_UNUSED(module), PyObject *args)
{
    int on;
    Py_ssize_t period;
    PyObject *active, *limit;
    if (!PyArg_ParseTuple(args, "pnOO:set_mode", &on, &period, &active, &limit)) {
        return NULL;
    }
    double seconds = 0.0;
    if (limit != Py_None) {
        seconds = PyFloat_AsDouble(limit);
        if (seconds == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    Py_XSETREF(checker, active == Py_None ? NULL : Py_NewRef(active));
    watchdog_limit = seconds;
    generation = period;
    tracking = on;
    Py_RETURN_NONE;
}

static PyObject *
fastlock_thread_state(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return (PyObject *)current_state();
}

/* CPython's specializing interpreter (3.11+) calls a method descriptor through its fast
 * path only when the instance's type is exactly the descriptor's class; on an instance of
 * a subclass (anypool.sync.Lock) it falls back to the generic call, ~10 ns slower per
 * call. So each public lock class gets its own descriptors of the hot methods, made for
 * that class with PyDescr_NewMethod. */
static const char *const hot_methods[] = {"acquire", "release", "locked", NULL};

static PyObject *
fastlock_specialize(PyObject *Py_UNUSED(module), PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &LockCoreType)) {
        PyErr_Format(PyExc_TypeError, "specialize() takes a subclass of LockCore, got %R",
                     cls);
        return NULL;
    }
    for (const char *const *name = hot_methods; *name != NULL; name++) {
        PyMethodDef *def = LockCore_methods;
        while (def->ml_name != NULL && strcmp(def->ml_name, *name) != 0) {
            def++;
        }
        PyObject *descriptor = PyDescr_NewMethod((PyTypeObject *)cls, def);
        if (descriptor == NULL) {
            return NULL;
        }
        int failed = PyObject_SetAttrString(cls, *name, descriptor);
        Py_DECREF(descriptor);
        if (failed) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef fastlock_functions[] = {
    {"specialize", fastlock_specialize, METH_O,
     "specialize(cls)\n--\n\n"
     "Give the LockCore subclass `cls` its own descriptors of the hot methods, so that the\n"
     "interpreter's fast call path applies to its instances."},
    {"configure", fastlock_configure, METH_VARARGS,
     "configure(threads, dump)\n--\n\n"
     "Where to register thread states (_state.threads) and what prints the watchdog's\n"
     "report (_watchdog.dump)."},
    {"set_mode", fastlock_set_mode, METH_VARARGS,
     "set_mode(tracking, generation, checker, watchdog)\n--\n\n"
     "Mirror _state: tracking on/off, the tracked period, the active checker or None,\n"
     "the watchdog's limit in seconds or None."},
    {"thread_state", fastlock_thread_state, METH_NOARGS,
     "thread_state()\n--\n\nThe calling thread's ThreadState."},
    {NULL}};

static struct PyModuleDef fastlock_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "anypool.sync._fastlock",
    .m_doc = "The C core of anypool.sync.Lock and RLock (see _fastlock.c).",
    .m_size = -1,
    .m_methods = fastlock_functions,
};

PyMODINIT_FUNC
PyInit__fastlock(void)
{
#ifdef Py_GIL_DISABLED
    /* Loading a module that does not declare itself GIL-free would turn the GIL back
     * on for the whole process; this one relies on the GIL (see the top). */
    PyErr_SetString(PyExc_ImportError,
                    "anypool.sync._fastlock relies on the GIL: on a free-threaded build "
                    "anypool.sync uses its pure-Python core");
    return NULL;
#else
    str_state_key = PyUnicode_InternFromString("anypool.sync._fastlock.state");
    str_before_acquire = PyUnicode_InternFromString("before_acquire");
    str_reentrant = PyUnicode_InternFromString("_reentrant");
    if (str_state_key == NULL || str_before_acquire == NULL || str_reentrant == NULL) {
        return NULL;
    }
    if (PyType_Ready(&ThreadStateType) < 0 || PyType_Ready(&LockCoreType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&fastlock_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "ThreadState", (PyObject *)&ThreadStateType) < 0 ||
        PyModule_AddObjectRef(module, "LockCore", (PyObject *)&LockCoreType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
#endif
}
