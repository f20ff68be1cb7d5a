// Running a reader on a file that may be hostile in a child process that can do nothing but compute and hand
// back its answer. libhdf5 1.10 has memory-safety bugs that crafted files reach (heap overflows, wild reads,
// absurd allocations: tests/fuzz/RESULTS.md); tl cannot fix them, so it never runs them in its own process.
// In the child a crash is only a crash, and the parent turns it into a tl::Error naming the file.
//
// The child (a fork of the caller), before it runs the reader:
//   - keeps one file descriptor, the status pipe's write end; every other one is closed, and no new one can
//   be
//     made;
//   - gets limits: address space and data may grow by Limits::memory_bytes (so an absurd allocation fails
//     instead of taking the machine), no core dumps, no file writes;
//   - installs a seccomp filter that allows only what computing on memory needs (sandbox.cpp lists it, with
//     why); anything else (sockets, exec, fork, signals to other processes, ptrace, executable memory, ...)
//     kills the child, and opening a file fails with ENOENT (libhdf5's in-memory driver tries to open the
//     file's name once and wants that to fail);
//   - dies with its parent thread (PR_SET_PDEATHSIG), ignores SIGINT (Ctrl-C is the parent's to handle).
// It writes its result (wire::Sink) into memory shared with the parent, at most Limits::reply_bytes, then its
// status to the pipe. The parent waits for the status (at most Limits::timeout_seconds), reaps the child on
// every path (no zombie, no descriptor left open), and only then parses the result (wire::Source), in place:
// tensors adopt their bytes without a copy, and nothing can change them under the parser. It reports, naming
// the file: the child's own error, a crash (the signal, or the exit status of a sanitizer's report), a
// timeout, or a malformed reply.
//
// Threads: fork() copies only the calling thread. The child uses malloc (glibc's fork() makes it safe to use
// in the child) and libhdf5, whose global lock the fork is kept from splitting (h5::ForkExclusion); it takes
// no other lock that another thread may have held (no iostreams, no OpenMP, no CUDA; std::locale's lock only
// if the program changed the global locale), and it ends with _exit(), so no atexit handler, destructor or
// leak check of the parent's runs in it. Should a lock still be caught held (another thread of the parent
// inside a C++ exception's unwinder at the instant of the fork, say), the child waits and the timeout ends
// it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "weights/sandbox_wire.h"

namespace tl::weights::sandbox {

struct Limits {
  double timeout_seconds = 60;
  std::uint64_t memory_bytes = std::uint64_t{1} << 30;  // growth of the child's address space and data
  std::uint64_t reply_bytes = std::uint64_t{64} << 20;  // the most the result may take
};

// For a file of `file_size` bytes: 60 s plus 1 s per 10 MiB; memory 4 x the file plus 1 GiB (a reader holds
// the file's arrays, converted, plus libhdf5's caches); a result of at most 4 x the file plus 64 MiB (float16
// read as float32 doubles the data; a compressed dataset could expand further, but real weights do not
// compress by half). The result's memory is reserved at that size and backed only where it is written.
Limits default_limits(std::uint64_t file_size);

// Runs `child` in a sandboxed child process of this one; what it writes to its Sink is the result, parsed
// here by `parent` from its Source once the child has exited. `name` (the file) starts every message. An
// exception `child` throws becomes the same exception type here (tl::Error or its subclasses, with the
// message), std::bad_alloc a message that the file needs more memory than the limit. Throws tl::Error when
// the child crashes, times out or sends a malformed result, when `parent` throws or leaves bytes unread, and
// when the system refuses the sandbox (no seccomp): tl then reads nothing, rather than read without it.
void run(const std::string& name, const Limits& limits, const std::function<void(wire::Sink&)>& child,
         const std::function<void(wire::Source&)>& parent);

}  // namespace tl::weights::sandbox
