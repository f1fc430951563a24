#pragma once
// Data parallelism on LibTorch's own process groups (c10d): Gloo between CPU processes, NCCL
// between GPUs where LibTorch was built with it. Processes are started the way `torchrun`
// starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); rank 0 hosts the
// rendezvous store. A world of one process needs none of this and makes no connection.
// Internal (LibTorch).
#include <ATen/ATen.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace monoscope::core {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // Reads the torchrun variables; a world of one when WORLD_SIZE is unset. Throws Error naming
  // the variable when one is malformed or inconsistent.
  static DistEnv fromEnvironment();
};

class ProcessGroup {
 public:
  // Joins the group (blocks until every rank has joined, at most `timeout`). Uses NCCL for a
  // CUDA device where available, else Gloo.
  static std::unique_ptr<ProcessGroup> join(const DistEnv& env, const c10::Device& device,
                                            std::chrono::seconds timeout);
  ~ProcessGroup();

  int rank() const { return env_.rank; }
  int worldSize() const { return env_.world_size; }
  const std::string& backend() const { return backend_; }
  std::chrono::seconds timeout() const { return timeout_; }

  // In place, over every rank (tensors of one dtype and device). `what` names the step in the
  // error a lost rank causes.
  void allReduceSum(std::vector<at::Tensor>& tensors, const char* what);
  void broadcast(std::vector<at::Tensor>& tensors, int root, const char* what);
  void barrier(const char* what);

 private:
  ProcessGroup(DistEnv env, std::chrono::seconds timeout);
  // Runs a collective, turning a failure (a rank gone, the timeout passed) into an Error.
  template <class F>
  void collective(const char* what, F&& f);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  DistEnv env_;
  std::chrono::seconds timeout_;
  std::string backend_ = "none";
};

}  // namespace monoscope::core
