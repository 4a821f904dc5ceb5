// Host driver for tests/test_open_profile_firmware.py: runs the firmware's packet code on a PC.
//
//   host_vectors packets ACC_CODE GYRO_CODE PERIOD_US PER_PACKET FIRST_SEQ T0_US
//       stdin: one sample per line, "ax ay az gx gy gz" in g and deg/s; sample k is taken at
//       T0_US + k * PERIOD_US (uint32 arithmetic, wrapping like micros()); a line "skip N" says
//       N samples were due but not taken (ImuStream::skip).
//       stdout: one IMU packet per line, hex (the last one flushed partial).
//   host_vectors status PERCENT MILLIVOLTS FLAGS      -> the status packet, hex
//   host_vectors parse HEX [HEX ...]                  -> one line per command: what the firmware
//       understood ("start", "set_rate 10000", "buzz 200", ...) or "rejected".
// The Arduino IDE compiles every .cpp of a sketch folder; this host-only driver (its own main)
// is left out of firmware builds by the guard below.
#if !defined(ARDUINO)

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sensorhub_open_packet.h"

namespace so = sensorhub_open;

namespace {

void print_hex(const uint8_t* data, size_t n) {
  for (size_t i = 0; i < n; ++i) std::printf("%02x", data[i]);
  std::printf("\n");
}

unsigned long arg(char** argv, int i) { return std::strtoul(argv[i], nullptr, 0); }

int packets(char** argv) {
  so::ImuStream stream;
  so::Ranges ranges;
  ranges.acc_code = static_cast<uint8_t>(arg(argv, 2));
  ranges.gyro_code = static_cast<uint8_t>(arg(argv, 3));
  const auto period_us = static_cast<uint16_t>(arg(argv, 4));
  stream.set_ranges(ranges);
  stream.set_period_us(period_us);
  stream.set_samples_per_packet(arg(argv, 5));
  stream.restart(static_cast<uint16_t>(arg(argv, 6)));
  uint32_t t_us = static_cast<uint32_t>(arg(argv, 7));
  float acc[3];
  float gyro[3];
  char line[256];
  while (std::fgets(line, sizeof line, stdin) != nullptr) {
    unsigned skipped = 0;
    if (std::sscanf(line, "skip %u", &skipped) == 1) {
      if (stream.skip(static_cast<uint16_t>(skipped))) print_hex(stream.packet(), stream.packet_size());
      t_us += static_cast<uint32_t>(skipped) * period_us;
      continue;
    }
    if (std::sscanf(line, "%f %f %f %f %f %f", &acc[0], &acc[1], &acc[2], &gyro[0], &gyro[1], &gyro[2]) != 6) {
      std::fprintf(stderr, "bad sample line: %s", line);
      return 2;
    }
    if (stream.add(t_us, acc, gyro)) print_hex(stream.packet(), stream.packet_size());
    t_us += period_us;
  }
  if (stream.flush()) print_hex(stream.packet(), stream.packet_size());
  return 0;
}

int parse(int argc, char** argv) {
  for (int i = 2; i < argc; ++i) {
    const std::string hex = argv[i];
    uint8_t buf[32];
    size_t n = 0;
    for (size_t k = 0; k + 1 < hex.size() && n < sizeof buf; k += 2) {
      buf[n++] = static_cast<uint8_t>(std::strtoul(hex.substr(k, 2).c_str(), nullptr, 16));
    }
    so::Command cmd;
    if (!so::parse_command(buf, n, &cmd)) {
      std::printf("rejected\n");
      continue;
    }
    switch (cmd.op) {
      case so::Opcode::kStart: std::printf("start\n"); break;
      case so::Opcode::kStop: std::printf("stop\n"); break;
      case so::Opcode::kSetRate: std::printf("set_rate %u\n", static_cast<unsigned>(cmd.period_us)); break;
      case so::Opcode::kSetRanges:
        std::printf("set_ranges %u %u\n", static_cast<unsigned>(cmd.ranges.acc_code),
                    static_cast<unsigned>(cmd.ranges.gyro_code));
        break;
      case so::Opcode::kBuzz: std::printf("buzz %u\n", static_cast<unsigned>(cmd.buzz_ms)); break;
      case so::Opcode::kReadStatus: std::printf("read_status\n"); break;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 8 && std::strcmp(argv[1], "packets") == 0) return packets(argv);
  if (argc == 5 && std::strcmp(argv[1], "status") == 0) {
    uint8_t out[so::kStatusSize];
    const size_t n = so::encode_status(out, static_cast<uint8_t>(arg(argv, 2)), static_cast<uint16_t>(arg(argv, 3)),
                                       static_cast<uint8_t>(arg(argv, 4)));
    print_hex(out, n);
    return 0;
  }
  if (argc >= 3 && std::strcmp(argv[1], "parse") == 0) return parse(argc, argv);
  std::fprintf(stderr, "usage: host_vectors packets|status|parse ... (see the comment at the top)\n");
  return 2;
}

#endif  // !defined(ARDUINO)
