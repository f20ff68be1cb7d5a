#include "weights/sandbox.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "weights/hdf5.h"

namespace tl::weights::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

// The child's end of the status pipe, moved to a fixed number so that the filter can name it.
constexpr int kReplyFd = 3;
// Exit statuses the child gives itself; 0 means "the reply is complete".
constexpr int kExitPipeFailed = 101;  // the parent went away

// Reply status bytes.
constexpr std::uint8_t kReplyOk = 'K';
constexpr std::uint8_t kReplyError = 'E';
// The error classes a reader throws, so that the parent throws the same one.
enum ErrorKind : std::uint8_t { kError, kValueError, kShapeError, kDTypeError, kDeviceError };
constexpr std::size_t kMaxMessage = 1 << 16;

// A sanitizer build's runtime needs more: it tests whether memory is readable by writing it into a pipe of its
// own (UBSan's vptr check, at virtual calls), asks where the signal stack is (ASan, before every throw), and
// asks whether stderr is a terminal when it reports. There the child may make a pipe and write to it, query
// sigaltstack and call ioctl: a development build's allowance, which releases are not built with. The define
// comes from weights/CMakeLists.txt.
#ifdef TL_SANDBOX_SANITIZERS
constexpr bool kSanitizerRuntime = true;
#else
constexpr bool kSanitizerRuntime = false;
#endif

// ---- the seccomp filter -----------------------------------------------------------------------------------

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "weights/sandbox.cpp: the seccomp filter knows x86-64 and AArch64 only"
#endif

// A classic BPF program over struct seccomp_data, built as "if (nr == X) return action;" pairs. Syscall
// numbers are this architecture's (<sys/syscall.h>); the first check refuses any other ABI (i386 or x32
// calls on x86-64 carry another arch value or a number no rule names), so a number cannot mean another call.
class Filter {
 public:
  Filter() {
    load(offsetof(seccomp_data, arch));
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0));
    code_.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    load(offsetof(seccomp_data, nr));
  }
  // if (nr == number) return action;
  void on(long number, std::uint32_t action) {
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(number), 0, 1));
    code_.push_back(BPF_STMT(BPF_RET | BPF_K, action));
  }
  void allow(long number) { on(number, SECCOMP_RET_ALLOW); }
  // if (nr == number) return (args[index] & bits) ? no : yes; (the low half: flags fit in it)
  void unless_bits(long number, int index, std::uint32_t bits, std::uint32_t yes, std::uint32_t no) {
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(number), 0, 4));
    load(offsetof(seccomp_data, args) + static_cast<std::uint32_t>(index) * 8);
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, bits, 1, 0));
    code_.push_back(BPF_STMT(BPF_RET | BPF_K, yes));
    code_.push_back(BPF_STMT(BPF_RET | BPF_K, no));
  }
  // if (nr == number) return args[index] == value ? yes : no; (both halves of the 64-bit argument)
  void on_argument(long number, int index, std::uint64_t value, std::uint32_t yes, std::uint32_t no) {
    const std::uint32_t low = offsetof(seccomp_data, args) + static_cast<std::uint32_t>(index) * 8;
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(number), 0, 6));
    load(low);
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(value), 0, 3));
    load(low + 4);
    code_.push_back(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(value >> 32), 0, 1));
    code_.push_back(BPF_STMT(BPF_RET | BPF_K, yes));
    code_.push_back(BPF_STMT(BPF_RET | BPF_K, no));
  }
  // Installs the program, ending with "anything else kills the process". Returns errno, 0 on success.
  int install() {
    code_.push_back(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    const sock_fprog program{static_cast<unsigned short>(code_.size()), code_.data()};
    // Without no_new_privs an unprivileged process may not install a filter (and an exec could gain
    // privileges the filter never saw; exec is refused anyway).
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) return errno;
    return 0;
  }

 private:
  void load(std::uint32_t offset) { code_.push_back(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset)); }
  std::vector<sock_filter> code_;
};

constexpr std::uint32_t errno_action(int error) {
  return SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(error) & SECCOMP_RET_DATA);
}

// What parsing a file image in memory needs, found by running every reader and test under the filter (and
// strace); the reason for each. Everything else kills the child.
int install_filter(pid_t self) {
  Filter f;
  // The status: write and writev to the pipe only; any other descriptor reads as closed (there is none).
  if (kSanitizerRuntime) {
    f.allow(SYS_write);
    f.allow(SYS_writev);
    f.allow(SYS_pipe2);
#ifdef SYS_pipe
    f.allow(SYS_pipe);
#endif
    f.allow(SYS_sigaltstack);
    f.allow(SYS_ioctl);
  } else {
    f.on_argument(SYS_write, 0, kReplyFd, SECCOMP_RET_ALLOW, errno_action(EBADF));
    f.on_argument(SYS_writev, 0, kReplyFd, SECCOMP_RET_ALLOW, errno_action(EBADF));
  }
  // Memory: malloc and free (brk for the main heap, mmap/munmap/mremap for large blocks, madvise and
  // mprotect for the heaps of threads' arenas, the one a child forked from a worker thread uses). Never
  // executable memory: nothing in the child loads code, so a compromised child cannot run code it writes.
  f.allow(SYS_brk);
  f.unless_bits(SYS_mmap, 2, PROT_EXEC, SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS);
  f.unless_bits(SYS_mprotect, 2, PROT_EXEC, SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS);
  f.allow(SYS_munmap);
  f.allow(SYS_mremap);
  f.allow(SYS_madvise);
  // Locks that glibc and libhdf5 (built thread-safe) take; with one thread they never wait.
  f.allow(SYS_futex);
  // Time, where the vDSO falls back to the kernel; and sleeping, which libhdf5's metadata cache does between
  // its retries of a read whose checksum fails (a damaged file).
  f.allow(SYS_clock_gettime);
  f.allow(SYS_clock_nanosleep);
  // Ending: _exit(), and abort() (which blocks signals, then raises SIGABRT at itself: tgkill of its own
  // process only, so the child cannot signal anyone else).
  f.allow(SYS_exit_group);
  f.allow(SYS_rt_sigprocmask);
  f.allow(SYS_getpid);
  f.allow(SYS_gettid);
  f.on_argument(SYS_tgkill, 0, static_cast<std::uint64_t>(self), SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS);
  // Closing: harmless, there is nothing to close but the reply.
  f.allow(SYS_close);
  // libhdf5's in-memory (core) driver opens the file's name once and insists that this fails when it is
  // given an image; glibc's fatal-error path may try /dev/tty. No file exists for the child.
  f.on(SYS_openat, errno_action(ENOENT));
#ifdef SYS_open
  f.on(SYS_open, errno_action(ENOENT));
#endif
  return f.install();
}

// ---- the child --------------------------------------------------------------------------------------------

// The status, the only thing the child writes to its pipe: "K" and where the result's index lies, or "E", the
// error's class and message.
[[noreturn]] void send_status(const std::string& status) {
  const char* p = status.data();
  std::size_t left = status.size();
  while (left > 0) {
    const ssize_t n = ::write(kReplyFd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(kExitPipeFailed);  // the parent is gone (or SIGPIPE already ended this process)
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  ::_exit(0);
}

std::string little_endian(std::uint64_t v, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += static_cast<char>(v >> (8 * i));
  return out;
}

[[noreturn]] void reply_error(ErrorKind kind, std::string message) {
  if (message.size() > kMaxMessage) message.resize(kMaxMessage);
  send_status(std::string(1, static_cast<char>(kReplyError)) + static_cast<char>(kind) +
              little_endian(message.size(), 4) + message);
}

void close_other_descriptors() {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, 0u, static_cast<unsigned>(kReplyFd - 1), 0u) == 0 &&
      ::syscall(SYS_close_range, static_cast<unsigned>(kReplyFd + 1), ~0u, 0u) == 0)
    return;
#endif
  // Kernels before 5.9: every number up to the descriptor limit.
  rlimit files{};
  const rlim_t top = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                         ? std::min<rlim_t>(files.rlim_cur, rlim_t{1} << 20)
                         : rlim_t{1} << 16;
  for (rlim_t fd = 0; fd < top; ++fd)
    if (fd != kReplyFd) ::close(static_cast<int>(fd));
}

void limit(int resource, rlim_t value) {
  rlimit current{};
  if (::getrlimit(resource, &current) != 0) return;
  const rlim_t hard = current.rlim_max == RLIM_INFINITY ? value : std::min(value, current.rlim_max);
  const rlimit wanted{hard, hard};  // the hard limit too: the child could not raise it back
  ::setrlimit(resource, &wanted);
}

struct ParentMemory {
  rlim_t address_space = 0, data = 0;  // bytes in use before the fork; 0 when unknown
};

// The limits on address space and data count what the process already has (a CUDA process reserves
// terabytes of address space, a sanitizer's shadow memory more): the child gets its budget on top of that.
ParentMemory parent_memory() {
  ParentMemory m;
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    rlim_t kib = 0;
    if (key == "VmSize:" && status >> kib) m.address_space = kib * 1024;
    if (key == "VmData:" && status >> kib) m.data = kib * 1024;
    status.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return m;
}

[[noreturn]] void child_main(int write_fd, pid_t parent, const std::string& name, const Limits& limits,
                             const ParentMemory& memory, unsigned char* region, std::size_t region_size,
                             const std::function<void(wire::Sink&)>& child) {
  // This process is a copy of one thread of the parent. It may enter libhdf5 (the parent holds its lock in
  // this copy of memory; no other thread exists to contend for it).
  h5::enter_forked_child();
  // Dies with the thread that forked it: an orphaned reader has no one to answer to.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(kExitPipeFailed);
  // The parent's signal handlers (a fuzzer's, a sanitizer's, tl_train's) are not for this process: a fault
  // here ends it with its signal, which the parent reports. Ctrl-C reaches the whole process group; the
  // parent decides what it means.
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  sigemptyset(&default_action.sa_mask);
  for (int s = 1; s < NSIG; ++s)
    if (s != SIGKILL && s != SIGSTOP) ::sigaction(s, &default_action, nullptr);
  ::signal(SIGINT, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  if (write_fd != kReplyFd && ::dup2(write_fd, kReplyFd) != kReplyFd) ::_exit(kExitPipeFailed);
  close_other_descriptors();

  if (memory.address_space > 0) limit(RLIMIT_AS, memory.address_space + limits.memory_bytes);
  if (memory.data > 0) limit(RLIMIT_DATA, memory.data + limits.memory_bytes);
  limit(RLIMIT_CORE, 0);    // a crash leaves no core file of a process that held the whole file
  limit(RLIMIT_FSIZE, 0);   // no file can be written (none can be opened either)
  limit(RLIMIT_NOFILE, kSanitizerRuntime ? 16 : 0);  // and no descriptor created; the pipe stays open

  if (const int error = install_filter(::getpid()); error != 0)
    reply_error(kError, str(name,
                            ": tl reads HDF5 files in a sandboxed process, and this system refuses to "
                            "set one up (seccomp: ",
                            std::strerror(error), "); the file was not read"));

  try {
    wire::Sink out(region, region_size, name);
    child(out);
    const auto [data_size, index_size] = out.finish();
    send_status(std::string(1, static_cast<char>(kReplyOk)) + little_endian(data_size, 8) +
                little_endian(index_size, 8));
  } catch (const ShapeError& e) {
    reply_error(kShapeError, e.what());
  } catch (const DTypeError& e) {
    reply_error(kDTypeError, e.what());
  } catch (const DeviceError& e) {
    reply_error(kDeviceError, e.what());
  } catch (const ValueError& e) {
    reply_error(kValueError, e.what());
  } catch (const Error& e) {
    reply_error(kError, e.what());
  } catch (const std::bad_alloc&) {
    reply_error(kError, str(name, ": reading it needs more memory than the ", limits.memory_bytes >> 20,
                            " MiB the sandboxed HDF5 reader may use (a damaged or hostile file?)"));
  } catch (const std::exception& e) {
    reply_error(kError, str(name, ": ", e.what()));
  } catch (...) {
    reply_error(kError, str(name, ": the sandboxed HDF5 reader failed"));
  }
}

// ---- the parent -------------------------------------------------------------------------------------------

class Descriptor {
 public:
  explicit Descriptor(int fd = -1) : fd_(fd) {}
  ~Descriptor() { reset(); }
  Descriptor(const Descriptor&) = delete;
  Descriptor& operator=(const Descriptor&) = delete;
  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// The child's status from the pipe, which it writes when it is done: at most `limit` bytes, until the end
// of the stream. Empty when the child ended without one; nullopt at the deadline.
std::optional<std::string> read_status(int fd, std::size_t limit, Clock::time_point deadline) {
  std::string status;
  char buffer[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count() + 1, INT_MAX)));
    if (ready < 0 && errno != EINTR) return status;  // cannot happen with a valid descriptor
    if (ready <= 0) continue;                        // interrupted, or the deadline check above decides
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return status;
    status.append(buffer, static_cast<std::size_t>(n));
    if (status.size() > limit) return status;  // a child that will not stop talking: refused below
  }
}

std::uint64_t little_endian_value(const std::string& bytes, std::size_t at, int count) {
  std::uint64_t v = 0;
  for (int i = count - 1; i >= 0; --i)
    v = v << 8 | static_cast<unsigned char>(bytes[at + static_cast<std::size_t>(i)]);
  return v;
}

// Memory shared between parent and child, for the result: reserved at the most the child may write, backed
// only where it writes, and given back beyond what it wrote once the parent has it.
class Region {
 public:
  Region(std::size_t size, const std::string& name) : size_(round_up(size)) {
    void* p =
        ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    TL_CHECK(p != MAP_FAILED, Error, name, ": cannot reserve ", size_ >> 20,
             " MiB for the result of the sandboxed HDF5 reader (", std::strerror(errno), ")");
    data_ = static_cast<unsigned char*>(p);
  }
  ~Region() { ::munmap(data_, size_); }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  unsigned char* data() const { return data_; }
  std::size_t size() const { return size_; }
  void keep(std::size_t used) {
    const std::size_t kept = round_up(used);
    if (kept < size_ && ::munmap(data_ + kept, size_ - kept) == 0) size_ = kept;
  }

 private:
  static std::size_t round_up(std::size_t n) {
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return std::max<std::size_t>(page, (n + page - 1) / page * page);
  }
  unsigned char* data_ = nullptr;
  std::size_t size_;
};

// The child process: reaped on every path, killed first if it is still running.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  ~Child() {
    if (!reaped_) {
      kill();
      wait_blocking();
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void kill() {
    if (!reaped_ && !killed_) {
      ::kill(pid_, SIGKILL);
      killed_ = true;
    }
  }
  bool killed() const { return killed_; }
  // Waits for the child's end until `deadline`, then kills it. False when its status is unknown (SIGCHLD is
  // ignored by the application: the kernel reaps children itself).
  bool wait(Clock::time_point deadline) {
    auto pause = std::chrono::microseconds(20);
    while (!reaped_) {
      const pid_t r = ::waitpid(pid_, &status_, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        break;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {  // ECHILD
        reaped_ = true;
        known_ = false;
        break;
      }
      if (Clock::now() >= deadline) {
        timed_out_ = !killed_;
        kill();
        wait_blocking();
        break;
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::microseconds(5000));
    }
    return known_;
  }
  bool timed_out() const { return timed_out_; }
  int status() const { return status_; }

 private:
  void wait_blocking() {
    while (!reaped_) {
      const pid_t r = ::waitpid(pid_, &status_, 0);
      if (r == pid_) {
        reaped_ = true;
      } else if (r < 0 && errno != EINTR) {
        reaped_ = true;
        known_ = false;
      }
    }
  }

  pid_t pid_;
  int status_ = 0;
  bool reaped_ = false, killed_ = false, known_ = true, timed_out_ = false;
};

const char* signal_name(int signal) {
  switch (signal) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGABRT:
      return "SIGABRT";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGTRAP:
      return "SIGTRAP";
    case SIGKILL:
      return "SIGKILL";
    case SIGXFSZ:
      return "SIGXFSZ";
    case SIGPIPE:
      return "SIGPIPE";
    default:
      return nullptr;
  }
}

// A message from the child is shown to the user as is: control characters (a terminal's escape sequences)
// from a compromised child become '?'.
std::string printable(std::string text) {
  for (char& c : text)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') || c == 0x7f) c = '?';
  return text;
}

[[noreturn]] void throw_as(std::uint8_t kind, const std::string& message) {
  switch (kind) {
    case kValueError:
      throw ValueError(message);
    case kShapeError:
      throw ShapeError(message);
    case kDTypeError:
      throw DTypeError(message);
    case kDeviceError:
      throw DeviceError(message);
    default:
      throw Error(message);
  }
}

}  // namespace

Limits default_limits(std::uint64_t file_size) {
  Limits l;
  l.timeout_seconds = 60 + static_cast<double>(file_size) / (10 << 20);
  l.memory_bytes = 4 * file_size + (std::uint64_t{1} << 30);
  l.reply_bytes = 4 * file_size + (std::uint64_t{64} << 20);
  return l;
}

void run(const std::string& name, const Limits& limits, const std::function<void(wire::Sink&)>& child,
         const std::function<void(wire::Source&)>& parent) {
  const Clock::time_point deadline =
      Clock::now() +
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limits.timeout_seconds));
  h5::initialize_library();  // once, here, rather than in every child
  const ParentMemory memory = parent_memory();
  const auto region = std::make_shared<Region>(static_cast<std::size_t>(limits.reply_bytes), name);
  int ends[2];
  // Close-on-exec: a thread of the parent that runs a program meanwhile must not hand it the pipe.
  TL_CHECK(::pipe2(ends, O_CLOEXEC) == 0, Error, name,
           ": cannot start the sandboxed HDF5 reader (pipe: ", std::strerror(errno), ")");
  Descriptor read_end(ends[0]), write_end(ends[1]);
  const pid_t self = ::getpid();
  pid_t pid = -1;
  int fork_error = 0;
  {
    const h5::ForkExclusion no_thread_in_libhdf5;
    pid = ::fork();
    fork_error = errno;
    if (pid == 0)
      child_main(write_end.get(), self, name, limits, memory, region->data(), region->size(), child);
  }
  write_end.reset();  // the child's alone now: the pipe's end of file is the child's end
  TL_CHECK(pid > 0, Error, name,
           ": cannot start the sandboxed HDF5 reader (fork: ", std::strerror(fork_error), ")");
  Child process(pid);

  constexpr std::size_t kMaxStatus = kMaxMessage + 6;
  const std::optional<std::string> status = read_status(read_end.get(), kMaxStatus, deadline);
  const bool chatty = status && status->size() > kMaxStatus;
  if (!status || chatty) process.kill();
  // Nothing may change the result while it is parsed: the child must be gone first (it cannot have made
  // another process to share the memory with: the filter forbids fork and clone).
  const bool known = process.wait(deadline);
  if (!status || process.timed_out())
    throw Error(
        str(name, ": reading the HDF5 file took more than ", limits.timeout_seconds,
            " s, so the sandboxed reader was stopped (a damaged file can make libhdf5 loop forever)"));
  const auto malformed = [&](const std::string& why) {
    return Error(str(name, ": the sandboxed HDF5 reader sent a malformed reply (", printable(why), ")"));
  };
  if (chatty) throw malformed(str("a status longer than ", kMaxStatus, " bytes"));
  const int end = process.status();
  if (known && WIFSIGNALED(end)) {
    const int signal = WTERMSIG(end);
    if (signal == SIGSYS)
      throw Error(str(name,
                      ": the sandboxed HDF5 reader was stopped making a forbidden system call (SIGSYS) "
                      "while reading this file; the file is damaged or was crafted to attack libhdf5"));
    const char* known_name = signal_name(signal);
    throw Error(str(name, ": the HDF5 library crashed reading this file (",
                    known_name ? std::string(known_name) : str("signal ", signal),
                    "); the file is damaged or was crafted"));
  }
  if (known && WIFEXITED(end) && WEXITSTATUS(end) != 0)
    throw Error(str(name,
                    ": the HDF5 library crashed reading this file (the sandboxed reader exited with status ",
                    WEXITSTATUS(end), " and no reply); the file is damaged or was crafted"));
  if (status->empty()) throw Error(str(name, ": the sandboxed HDF5 reader ended without a reply"));
  const auto byte = static_cast<std::uint8_t>((*status)[0]);
  if (byte == kReplyError) {
    if (status->size() < 6 || little_endian_value(*status, 2, 4) != status->size() - 6)
      throw malformed("a truncated error message");
    throw_as(static_cast<std::uint8_t>((*status)[1]), printable(status->substr(6)));
  }
  if (byte != kReplyOk || status->size() != 17)
    throw malformed(str("a status of ", status->size(), " bytes"));
  const std::uint64_t data_size = little_endian_value(*status, 1, 8);
  const std::uint64_t index_size = little_endian_value(*status, 9, 8);
  if (data_size > region->size() || index_size > region->size() - data_size)
    throw malformed(str("a result of ", data_size, " + ", index_size, " bytes in ", region->size()));
  region->keep(static_cast<std::size_t>(data_size + index_size));
  try {
    wire::Source in(region, region->data(), static_cast<std::size_t>(data_size),
                    static_cast<std::size_t>(index_size));
    parent(in);
    if (!in.at_end()) throw wire::MalformedReply(str(in.remaining(), " bytes after the end of the reply"));
  } catch (const std::exception& e) {
    throw malformed(e.what());
  }
}

}  // namespace tl::weights::sandbox
