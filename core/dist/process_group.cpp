#include "dist/process_group.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdlib>

#include "util/error.h"
#include "util/numbers.h"

namespace monoscope::core {

namespace {

std::string envOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

int envInt(const char* name, int fallback, int lo, int hi) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  const std::int64_t n = parseInt64(v, std::string("environment variable ") + name);
  if (n < lo || n > hi)
    throw Error(std::string("environment variable ") + name + "=" + v + " is outside " + std::to_string(lo) + ".." +
                std::to_string(hi));
  return static_cast<int>(n);
}

std::string firstLine(const std::string& s) {
  const auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

// c10d's collectives take one tensor per device; several tensors travel as one flat buffer
// (of one dtype) and are copied back.
at::Tensor flatten(const std::vector<at::Tensor>& tensors) {
  std::vector<at::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) {
    if (t.scalar_type() != tensors.front().scalar_type() || t.device() != tensors.front().device())
      throw Error("internal: a collective's tensors must share dtype and device");
    flat.push_back(t.reshape({-1}));
  }
  return at::cat(flat);
}

void unflatten(const at::Tensor& flat, std::vector<at::Tensor>& tensors) {
  std::int64_t at_el = 0;
  for (auto& t : tensors) {
    t.copy_(flat.narrow(0, at_el, t.numel()).view(t.sizes()));
    at_el += t.numel();
  }
}

bool isLoopback(const std::string& addr) {
  return addr == "localhost" || addr == "::1" || addr.rfind("127.", 0) == 0;
}

}  // namespace

DistEnv DistEnv::fromEnvironment() {
  DistEnv e;
  e.world_size = envInt("WORLD_SIZE", 1, 1, 1 << 16);
  e.rank = envInt("RANK", 0, 0, (1 << 16) - 1);
  e.local_rank = envInt("LOCAL_RANK", 0, 0, (1 << 16) - 1);
  e.master_addr = envOr("MASTER_ADDR", "127.0.0.1");
  e.master_port = envInt("MASTER_PORT", 29500, 1, 65535);
  if (e.rank >= e.world_size)
    throw Error("RANK=" + std::to_string(e.rank) + " is not below WORLD_SIZE=" + std::to_string(e.world_size),
                "start ranks 0..WORLD_SIZE-1, e.g. with torchrun or srun");
  if (e.world_size > 1 && std::getenv("MASTER_ADDR") == nullptr && std::getenv("MASTER_PORT") == nullptr)
    throw Error("WORLD_SIZE=" + std::to_string(e.world_size) + " but MASTER_ADDR and MASTER_PORT are unset",
                "set them to the address and a free port of the machine running rank 0");
  return e;
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#ifdef USE_C10D_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
};

ProcessGroup::ProcessGroup(DistEnv env, std::chrono::seconds timeout)
    : impl_(std::make_unique<Impl>()), env_(std::move(env)), timeout_(timeout) {}

ProcessGroup::~ProcessGroup() = default;

std::unique_ptr<ProcessGroup> ProcessGroup::join(const DistEnv& env, const c10::Device& device,
                                                 std::chrono::seconds timeout) {
  std::unique_ptr<ProcessGroup> pg(new ProcessGroup(env, timeout));
  if (env.world_size == 1) return pg;
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout);
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(env.master_port);
    opts.isServer = env.rank == 0;
    opts.numWorkers = static_cast<std::size_t>(env.world_size);
    opts.waitWorkers = true;
    opts.timeout = ms;
    pg->impl_->store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
#ifdef USE_C10D_NCCL
    if (device.is_cuda()) {
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = ms;
      pg->impl_->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg->impl_->store, env.rank, env.world_size, o);
      pg->backend_ = "nccl";
      return pg;
    }
#endif
    auto o = c10d::ProcessGroupGloo::Options::create();
    o->timeout = ms;
    // The interface Gloo binds: GLOO_SOCKET_IFNAME as torch reads it, the loopback address when
    // every rank is on this machine, else this host's name.
    const std::string ifname = envOr("GLOO_SOCKET_IFNAME", "");
    if (!ifname.empty()) {
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (isLoopback(env.master_addr)) {
      o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    pg->impl_->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(pg->impl_->store, env.rank, env.world_size, o);
    pg->backend_ = "gloo";
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                    " could not join the process group at " + where + " within " + std::to_string(timeout.count()) +
                    " s: " + firstLine(e.what()),
                "start every rank with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE; rank 0 must be reachable");
  }
  (void)device;
  return pg;
}

template <class F>
void ProcessGroup::collective(const char* what, F&& f) {
  if (env_.world_size == 1) return;
  try {
    f();
  } catch (const std::exception& e) {
    throw Error("rank " + std::to_string(env_.rank) + " of " + std::to_string(env_.world_size) + ": " + what +
                    " failed (a rank stopped, or none answered within the " + std::to_string(timeout_.count()) +
                    " s timeout): " + firstLine(e.what()),
                "restart every rank; training resumes from the last checkpoint, with any number of ranks");
  }
}

void ProcessGroup::allReduceSum(std::vector<at::Tensor>& tensors, const char* what) {
  if (env_.world_size == 1 || tensors.empty()) return;
  std::vector<at::Tensor> flat = {flatten(tensors)};
  collective(what, [&] {
#ifdef USE_C10D_NCCL
    if (impl_->nccl) {
      impl_->nccl->allreduce(flat)->wait();
      return;
    }
#endif
    impl_->gloo->allreduce(flat)->wait();
  });
  unflatten(flat[0], tensors);
}

void ProcessGroup::broadcast(std::vector<at::Tensor>& tensors, int root, const char* what) {
  if (env_.world_size == 1 || tensors.empty()) return;
  std::vector<at::Tensor> flat = {flatten(tensors)};
  collective(what, [&] {
    c10d::BroadcastOptions o;
    o.rootRank = root;
#ifdef USE_C10D_NCCL
    if (impl_->nccl) {
      impl_->nccl->broadcast(flat, o)->wait();
      return;
    }
#endif
    impl_->gloo->broadcast(flat, o)->wait();
  });
  unflatten(flat[0], tensors);
}

void ProcessGroup::barrier(const char* what) {
  collective(what, [&] {
#ifdef USE_C10D_NCCL
    if (impl_->nccl) {
      impl_->nccl->barrier()->wait();
      return;
    }
#endif
    impl_->gloo->barrier()->wait();
  });
}

}  // namespace monoscope::core
