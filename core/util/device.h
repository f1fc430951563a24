#pragma once
// Internal: torch::Device from a device name. Include only from .cpp files.
#include <c10/core/Device.h>

#include <string>

namespace monoscope::core {
c10::Device resolveDevice(const std::string& requested);
}
