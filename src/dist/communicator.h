// The ranks of a job and the few collective operations dsv3 needs, on Open MPI.
//
// A process started by `mpirun` joins the job's world (MPI is initialised on first use); a
// process started any other way is a world of one rank that never touches MPI, so every
// single-machine command runs exactly as before.
//
// Every operation waits at most `timeout` seconds: collectives are started non-blocking and
// polled against a deadline, and a rank that passes it aborts the whole job with a message
// naming the operation. So a rank that dies or hangs ends the job in bounded time instead
// of deadlocking the others (mpirun itself ends the job when a rank exits or is killed).
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace dsv3 {

class Communicator {
 public:
  // The job's world (initialised on first call).
  static Communicator& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }
  bool is_root() const { return rank_ == 0; }

  void set_timeout(double seconds) { timeout_s_ = seconds; }
  double timeout() const { return timeout_s_; }

  // Element-wise sums over all ranks, in place; `what` names the operation in errors.
  void allreduce_sum(std::span<float> values, const char* what);
  void allreduce_sum(std::span<double> values, const char* what);
  void allreduce_sum(std::span<int64_t> values, const char* what);
  // A sum started now and finished by wait_reductions(), so that computation can go on
  // meanwhile; `values` must stay untouched until then. All ranks start the same sums in the
  // same order (as for every collective).
  void start_allreduce_sum(std::span<double> values, const char* what);
  // Lets the started operations advance (MPI moves them on only inside its calls); never waits.
  void progress(const char* what);
  void wait_reductions(const char* what);
  // The largest value over all ranks.
  double allreduce_max(double value, const char* what);
  // Root's bytes into every rank's buffer of the same size.
  void broadcast(void* data, int64_t bytes, int root, const char* what);
  // Personalised exchange: rank r sends send_bytes[q] bytes (at send_offsets[q]) to each q and
  // receives recv_bytes[q] bytes (at recv_offsets[q]) from each q. Sizes in bytes, each < 2 GiB.
  void alltoallv(const void* send, std::span<const int> send_bytes, std::span<const int> send_offsets, void* recv,
                 std::span<const int> recv_bytes, std::span<const int> recv_offsets, const char* what);
  void barrier(const char* what);

  // Point to point. send() posts a non-blocking send and returns at once: `data` must stay
  // unchanged until wait_sends(). receive() returns when the message (same peer and tag) is in.
  void send(const void* data, int64_t bytes, int peer, int tag, const char* what);
  void receive(void* data, int64_t bytes, int peer, int tag, const char* what);
  void wait_sends(const char* what);

  // Ends every rank of the job with exit code 1 after printing `message` (one line, naming
  // this rank). Single-process: prints and exits.
  [[noreturn]] void abort(const std::string& message);

 private:
  Communicator();
  ~Communicator();
  enum class Element { kFloat, kDouble, kInt64 };
  enum class Reduction { kSum, kMax };
  void allreduce(void* values, size_t count, Element element, Reduction reduction, const char* what);
  // Polls a started non-blocking operation until it completes or the timeout passes.
  void wait(void* request, const char* what);

  int rank_ = 0;
  int size_ = 1;
  double timeout_s_ = 600;
};

}  // namespace dsv3
