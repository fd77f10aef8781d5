#include "dist/communicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/error.h"

namespace dsv3 {

namespace {

// Open MPI's launcher sets these in every rank's environment.
bool started_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

void check(int code, const char* what) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  fail(what, ": MPI error: ", std::string(text, static_cast<size_t>(length)));
}

// MPI counts are int: large buffers go in pieces.
constexpr size_t kMaxPiece = size_t{1} << 30;

// Starts in-place reductions of `count` elements of `width` bytes over all ranks, in pieces
// an int can count, adding their requests to `requests`.
void start_allreduce(void* values, size_t count, size_t width, MPI_Datatype type, MPI_Op op, const char* what,
                     std::vector<MPI_Request>& requests) {
  for (size_t begin = 0; begin < count; begin += kMaxPiece) {
    MPI_Request request;
    check(MPI_Iallreduce(MPI_IN_PLACE, static_cast<char*>(values) + begin * width,
                         static_cast<int>(std::min(kMaxPiece, count - begin)), type, op, MPI_COMM_WORLD, &request),
          what);
    requests.push_back(request);
  }
}

// Sends posted by Communicator::send and not yet waited for (the communicator is one per process).
std::vector<MPI_Request>& pending_sends() {
  static std::vector<MPI_Request> requests;
  return requests;
}

// Sums started by Communicator::start_allreduce_sum and not yet waited for.
std::vector<MPI_Request>& pending_reductions() {
  static std::vector<MPI_Request> requests;
  return requests;
}

int message_bytes(int64_t bytes, const char* what) {
  if (bytes < 0 || bytes > std::numeric_limits<int>::max()) fail(what, ": a message of ", bytes, " bytes");
  return static_cast<int>(bytes);
}

}  // namespace

Communicator& Communicator::world() {
  static Communicator communicator;
  return communicator;
}

Communicator::Communicator() {
  if (!started_by_mpirun()) return;
  int provided = 0;
  // One thread at a time calls MPI (the main thread, or the serving engine's); the thread
  // pool's workers never do.
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  if (provided < MPI_THREAD_SERIALIZED) fail("this MPI library cannot be called from more than one thread");
  // Errors come back as codes, turned into messages by check(), instead of killing the job unexplained.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

Communicator::~Communicator() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (initialized && !finalized) MPI_Finalize();
}

void Communicator::abort(const std::string& message) {
  std::fprintf(stderr, "dsv3: error: rank %d of %d: %s\n", rank_, size_, message.c_str());
  std::fflush(stderr);
  if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, 1);
  std::exit(1);
}

void Communicator::wait(void* request, const char* what) {
  auto* r = static_cast<MPI_Request*>(request);
  const auto start = Clock::now();
  for (int polls = 0;; ++polls) {
    int done = 0;
    check(MPI_Test(r, &done, MPI_STATUS_IGNORE), what);
    if (done) return;
    const double waited = seconds_since(start);
    if (waited > timeout_s_) {
      char message[256];
      std::snprintf(message, sizeof message,
                    "%s: no answer from the other ranks after %.0f s (a rank died or hangs; see --dist-timeout)", what,
                    timeout_s_);
      abort(message);
    }
    // Spin briefly (a step's collectives come close together), then yield the core: ranks may
    // share cores with each other and with compute threads.
    if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

void Communicator::allreduce(void* values, size_t count, Element element, Reduction reduction, const char* what) {
  if (size_ == 1) return;
  const MPI_Datatype type = element == Element::kFloat    ? MPI_FLOAT
                            : element == Element::kDouble ? MPI_DOUBLE
                                                          : MPI_INT64_T;
  std::vector<MPI_Request> requests;
  start_allreduce(values, count, element == Element::kFloat ? 4 : 8, type,
                  reduction == Reduction::kSum ? MPI_SUM : MPI_MAX, what, requests);
  for (MPI_Request& request : requests) wait(&request, what);
}

void Communicator::start_allreduce_sum(std::span<double> values, const char* what) {
  if (size_ == 1) return;
  start_allreduce(values.data(), values.size(), sizeof(double), MPI_DOUBLE, MPI_SUM, what, pending_reductions());
}

void Communicator::progress(const char* what) {
  std::vector<MPI_Request>& requests = pending_reductions();
  if (requests.empty()) return;
  int done = 0;  // when all are complete they become MPI_REQUEST_NULL, on which wait() returns at once
  check(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE), what);
}

void Communicator::wait_reductions(const char* what) {
  for (MPI_Request& request : pending_reductions()) wait(&request, what);
  pending_reductions().clear();
}

void Communicator::allreduce_sum(std::span<float> values, const char* what) {
  allreduce(values.data(), values.size(), Element::kFloat, Reduction::kSum, what);
}
void Communicator::allreduce_sum(std::span<double> values, const char* what) {
  allreduce(values.data(), values.size(), Element::kDouble, Reduction::kSum, what);
}
void Communicator::allreduce_sum(std::span<int64_t> values, const char* what) {
  allreduce(values.data(), values.size(), Element::kInt64, Reduction::kSum, what);
}
double Communicator::allreduce_max(double value, const char* what) {
  allreduce(&value, 1, Element::kDouble, Reduction::kMax, what);
  return value;
}

void Communicator::broadcast(void* data, int64_t bytes, int root, const char* what) {
  if (size_ == 1) return;
  for (int64_t begin = 0; begin < bytes; begin += static_cast<int64_t>(kMaxPiece)) {
    MPI_Request request;
    check(MPI_Ibcast(static_cast<char*>(data) + begin, static_cast<int>(std::min<int64_t>(kMaxPiece, bytes - begin)),
                     MPI_BYTE, root, MPI_COMM_WORLD, &request),
          what);
    wait(&request, what);
  }
}

void Communicator::alltoallv(const void* send, std::span<const int> send_bytes, std::span<const int> send_offsets,
                             void* recv, std::span<const int> recv_bytes, std::span<const int> recv_offsets,
                             const char* what) {
  const size_t n = static_cast<size_t>(size_);
  if (send_bytes.size() != n || send_offsets.size() != n || recv_bytes.size() != n || recv_offsets.size() != n)
    fail(what, ": alltoallv needs one count and offset per rank");
  if (size_ == 1) {
    std::copy_n(static_cast<const char*>(send) + send_offsets[0], send_bytes[0],
                static_cast<char*>(recv) + recv_offsets[0]);
    return;
  }
  MPI_Request request;
  check(MPI_Ialltoallv(send, send_bytes.data(), send_offsets.data(), MPI_BYTE, recv, recv_bytes.data(),
                       recv_offsets.data(), MPI_BYTE, MPI_COMM_WORLD, &request),
        what);
  wait(&request, what);
}

void Communicator::send(const void* data, int64_t bytes, int peer, int tag, const char* what) {
  if (peer < 0 || peer >= size_ || peer == rank_) fail(what, ": no rank ", peer, " to send to");
  MPI_Request request;
  check(MPI_Isend(data, message_bytes(bytes, what), MPI_BYTE, peer, tag, MPI_COMM_WORLD, &request), what);
  pending_sends().push_back(request);
}

void Communicator::receive(void* data, int64_t bytes, int peer, int tag, const char* what) {
  if (peer < 0 || peer >= size_ || peer == rank_) fail(what, ": no rank ", peer, " to receive from");
  MPI_Request request;
  check(MPI_Irecv(data, message_bytes(bytes, what), MPI_BYTE, peer, tag, MPI_COMM_WORLD, &request), what);
  wait(&request, what);
}

void Communicator::wait_sends(const char* what) {
  for (MPI_Request& request : pending_sends()) wait(&request, what);
  pending_sends().clear();
}

void Communicator::barrier(const char* what) {
  if (size_ == 1) return;
  MPI_Request request;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &request), what);
  wait(&request, what);
}

}  // namespace dsv3
