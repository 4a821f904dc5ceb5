// sensorhub open profile: packet building and command parsing (see sensorhub_open_packet.h).
#include "sensorhub_open_packet.h"

#include <cmath>
#include <cstring>

namespace sensorhub_open {
namespace {

void put_u16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xFF);
  p[1] = static_cast<uint8_t>(v >> 8);
}

void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>((v >> (8 * i)) & 0xFF);
}

uint16_t get_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

}  // namespace

int16_t quantise(float value, double full_scale) {
  if (std::isnan(value)) return 0;
  const double scaled = static_cast<double>(value) * 32768.0 / full_scale;
  if (scaled >= 32767.0) return 32767;
  if (scaled <= -32768.0) return -32768;
  return static_cast<int16_t>(std::lround(scaled));
}

size_t max_samples_for_mtu(uint16_t att_mtu) {
  if (att_mtu < 3 + kHeaderSize + kSampleSize) return 0;
  const size_t n = (att_mtu - 3 - kHeaderSize) / kSampleSize;
  return n < kMaxSamples ? n : kMaxSamples;
}

void ImuStream::restart(uint16_t first_seq) {
  seq_ = first_seq;
  n_open_ = 0;
  out_size_ = 0;
}

void ImuStream::set_samples_per_packet(size_t n) {
  per_packet_ = n < 1 ? 1 : (n > kMaxSamples ? kMaxSamples : n);
}

bool ImuStream::add(uint32_t t_us, const float acc_g[3], const float gyro_dps[3]) {
  if (n_open_ == 0) {
    // The header describes the packet's first sample; ranges and period are frozen for it.
    open_ranges_ = ranges_;
    open_[0] = kImuHeader;
    open_[1] = open_ranges_.byte();
    put_u16(open_ + 2, seq_);
    put_u32(open_ + 4, t_us);
    put_u16(open_ + 8, period_us_);
  }
  uint8_t* p = open_ + kHeaderSize + kSampleSize * n_open_;
  for (int axis = 0; axis < 3; ++axis) {
    put_u16(p + 2 * axis, static_cast<uint16_t>(quantise(acc_g[axis], open_ranges_.acc_g())));
    put_u16(p + 6 + 2 * axis, static_cast<uint16_t>(quantise(gyro_dps[axis], open_ranges_.gyro_dps())));
  }
  ++n_open_;
  seq_ = static_cast<uint16_t>(seq_ + 1);  // wraps mod 2^16 by design
  if (n_open_ >= per_packet_) {
    finish();
    return true;
  }
  return false;
}

bool ImuStream::flush() {
  if (n_open_ == 0) return false;
  finish();
  return true;
}

bool ImuStream::skip(uint16_t n) {
  const bool flushed = flush();
  seq_ = static_cast<uint16_t>(seq_ + n);
  return flushed;
}

void ImuStream::finish() {
  out_size_ = kHeaderSize + kSampleSize * n_open_;
  std::memcpy(out_, open_, out_size_);
  n_open_ = 0;
}

bool parse_command(const uint8_t* data, size_t len, Command* out) {
  if (data == nullptr || out == nullptr || len == 0) return false;
  Command cmd;
  switch (data[0]) {
    case static_cast<uint8_t>(Opcode::kStart):
    case static_cast<uint8_t>(Opcode::kStop):
    case static_cast<uint8_t>(Opcode::kReadStatus):
      if (len != 1) return false;
      break;
    case static_cast<uint8_t>(Opcode::kSetRate):
      if (len != 3) return false;
      cmd.period_us = get_u16(data + 1);
      if (cmd.period_us == 0) return false;
      break;
    case static_cast<uint8_t>(Opcode::kSetRanges):
      if (len != 2) return false;
      cmd.ranges = Ranges::from_byte(data[1]);
      if (!cmd.ranges.valid()) return false;
      break;
    case static_cast<uint8_t>(Opcode::kBuzz):
      if (len != 3) return false;
      cmd.buzz_ms = get_u16(data + 1);
      if (cmd.buzz_ms == 0 || cmd.buzz_ms > kMaxBuzzMs) return false;
      break;
    default:
      return false;
  }
  cmd.op = static_cast<Opcode>(data[0]);
  *out = cmd;
  return true;
}

size_t encode_status(uint8_t* out, uint8_t percent, uint16_t millivolts, uint8_t flags) {
  out[0] = kStatusHeader;
  out[1] = percent;
  put_u16(out + 2, millivolts);
  out[4] = static_cast<uint8_t>(flags & 0x0F);
  return kStatusSize;
}

}  // namespace sensorhub_open
