// sensorhub open profile: packet building and command parsing, portable C++17.
//
// No Arduino includes: the sketch (sensorhub_open.ino) and the host test
// (tests/test_open_profile_firmware.py, via host_vectors.cpp) compile this same file.
// The byte layout is specified in firmware_profiles/sensorhub_open.md; all fields little-endian.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sensorhub_open {

constexpr uint8_t kImuHeader = 0x11;     // version 1, type 1 (IMU)
constexpr uint8_t kStatusHeader = 0x12;  // version 1, type 2 (status)
constexpr size_t kHeaderSize = 10;
constexpr size_t kSampleSize = 12;       // six int16
constexpr size_t kMaxSamples = 19;       // 10 + 19 * 12 = 238 <= 244 (ATT MTU 247 - 3)
constexpr size_t kMaxPacketSize = kHeaderSize + kSampleSize * kMaxSamples;
constexpr size_t kStatusSize = 5;

// Status flags (byte 4 of the status packet).
constexpr uint8_t kFlagStreaming = 0x01;
constexpr uint8_t kFlagCharging = 0x02;
constexpr uint8_t kFlagImuError = 0x04;
constexpr uint8_t kFlagCommandRejected = 0x08;

// Command opcodes (first byte written to the command characteristic).
enum class Opcode : uint8_t {
  kStart = 0x01,       // 01
  kStop = 0x02,        // 02
  kSetRate = 0x03,     // 03 <period_us u16>
  kSetRanges = 0x04,   // 04 <ranges byte>
  kBuzz = 0x05,        // 05 <duration_ms u16>, 1..5000 ms
  kReadStatus = 0x06,  // 06 -> a status notification
};

constexpr uint16_t kMaxBuzzMs = 5000;

// Full-scale ranges, coded as in byte 1 of the IMU packet: acc +-(2 << acc_code) g (code 0..4),
// gyro +-(125 << gyro_code) deg/s (code 0..5).
struct Ranges {
  uint8_t acc_code = 3;   // +-16 g
  uint8_t gyro_code = 4;  // +-2000 deg/s

  bool valid() const { return acc_code <= 4 && gyro_code <= 5; }
  double acc_g() const { return static_cast<double>(2u << acc_code); }
  double gyro_dps() const { return static_cast<double>(125u << gyro_code); }
  uint8_t byte() const { return static_cast<uint8_t>((gyro_code << 4) | (acc_code & 0x0F)); }
  static Ranges from_byte(uint8_t b) { return Ranges{static_cast<uint8_t>(b & 0x0F), static_cast<uint8_t>(b >> 4)}; }
};

// value (g or deg/s) -> int16 with LSB = full_scale / 32768, rounded to nearest, saturated to
// [-32768, 32767]; NaN -> 0.
int16_t quantise(float value, double full_scale);

// Samples per notification that fit an ATT MTU (0 when even one does not fit: MTU < 25).
size_t max_samples_for_mtu(uint16_t att_mtu);

// Builds IMU packets from a stream of samples. The sample counter counts samples *taken*: a
// packet the radio could not send is simply lost, and the host sees the gap in the counter.
class ImuStream {
 public:
  ImuStream() = default;

  // Restarts the stream (start command): counter at first_seq, packet empty.
  void restart(uint16_t first_seq = 0);
  // Settings take effect with the next packet.
  void set_ranges(Ranges ranges) { ranges_ = ranges; }
  void set_period_us(uint16_t period_us) { period_us_ = period_us; }
  void set_samples_per_packet(size_t n);

  // Adds the sample taken at device time t_us (acc in g, gyro in deg/s). Returns true when a
  // packet is complete; read packet()/packet_size() before the next add().
  bool add(uint32_t t_us, const float acc_g[3], const float gyro_dps[3]);
  // Completes a partial packet (e.g. on stop); false when there was none.
  bool flush();
  // Samples that were due but not taken (the loop stalled): completes a partial packet (true
  // when there was one, to be sent first) and advances the counter by n, so the host sees an
  // exact gap instead of mis-timed samples.
  bool skip(uint16_t n);

  const uint8_t* packet() const { return out_; }
  size_t packet_size() const { return out_size_; }
  uint16_t next_seq() const { return seq_; }
  Ranges ranges() const { return ranges_; }
  uint16_t period_us() const { return period_us_; }
  size_t samples_per_packet() const { return per_packet_; }

 private:
  void finish();

  Ranges ranges_{};
  Ranges open_ranges_{};
  uint16_t period_us_ = 10000;
  size_t per_packet_ = 4;
  uint16_t seq_ = 0;
  size_t n_open_ = 0;
  uint8_t open_[kMaxPacketSize] = {};
  uint8_t out_[kMaxPacketSize] = {};
  size_t out_size_ = 0;
};

struct Command {
  Opcode op = Opcode::kStart;
  uint16_t period_us = 0;  // kSetRate
  Ranges ranges{};         // kSetRanges
  uint16_t buzz_ms = 0;    // kBuzz
};

// Parses one write to the command characteristic; false (command rejected) on an unknown
// opcode, a wrong length or an out-of-range argument.
bool parse_command(const uint8_t* data, size_t len, Command* out);

// Writes the 5-byte status packet; percent 0xFF = unknown, millivolts 0 = unknown.
size_t encode_status(uint8_t* out, uint8_t percent, uint16_t millivolts, uint8_t flags);

}  // namespace sensorhub_open
