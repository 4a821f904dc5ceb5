// sensorhub open profile — reference firmware (firmware_profiles/sensorhub_open.md).
//
// BLE stack: NimBLE-Arduino 2.x (h2zero/NimBLE-Arduino), chosen over ArduinoBLE because it runs
// on both target families (ESP32 / ESP32-S3 / ESP32-C3 with the Espressif core, nRF52840 with the
// n-able core) and lets the firmware ask for an ATT MTU of 247 and read the negotiated one, which
// sets how many samples fit in one notification.
//
// IMU: one of the Arduino IMU libraries, which share one API (readAcceleration in g,
// readGyroscope in °/s):
//   default                    Arduino_BMI270_BMM150 (BMI270 at I2C 0x68, e.g. Nano 33 BLE Sense Rev2)
//   -DSENSORHUB_IMU_LSM6DS3     Arduino_LSM6DS3 (LSM6DS3 / LSM6DS3TR-C at I2C 0x6A)
// Optional pins (build flags): SENSORHUB_MOTOR_PIN (vibration motor through a transistor),
// SENSORHUB_VBAT_PIN + SENSORHUB_VBAT_DIVIDER (battery through a resistor divider).
//
// The packet layout lives in sensorhub_open_packet.{h,cpp}, which the host tests compile with g++.

#include <NimBLEDevice.h>

#include <atomic>

#if defined(SENSORHUB_IMU_LSM6DS3)
#include <Arduino_LSM6DS3.h>
#else
#include <Arduino_BMI270_BMM150.h>
#endif

#include "sensorhub_open_packet.h"

namespace so = sensorhub_open;

// 128-bit UUIDs (random v4 base 939a____-e87e-4e89-8bb0-b63c92ac8d77; the first group numbers
// the attribute), identical to firmware_profiles/sensorhub_open.toml.
static const char* kServiceUuid = "939a0001-e87e-4e89-8bb0-b63c92ac8d77";
static const char* kDataUuid = "939a0002-e87e-4e89-8bb0-b63c92ac8d77";     // notify: IMU packets
static const char* kCommandUuid = "939a0003-e87e-4e89-8bb0-b63c92ac8d77";  // write: commands
static const char* kStatusUuid = "939a0004-e87e-4e89-8bb0-b63c92ac8d77";   // read + notify: status

// About 25 notifications per second: at 100 Hz 4 samples (40 ms) per notification, well inside
// a 15–30 ms connection interval, and few enough radio events to save power.
static const uint32_t kNotificationsPerSecond = 25;
static const uint32_t kStatusEveryMs = 60000;

static NimBLECharacteristic* g_data = nullptr;
static NimBLECharacteristic* g_status = nullptr;
static so::ImuStream g_stream;

// Filled by the NimBLE host task, consumed by loop(): one pending command at a time.
static std::atomic<bool> g_command_pending{false};
static uint8_t g_command[8];
static size_t g_command_len = 0;
static std::atomic<uint16_t> g_mtu{23};
static std::atomic<bool> g_connected{false};

static bool g_streaming = false;
static uint32_t g_next_sample_us = 0;
static uint8_t g_flags = 0;
static uint32_t g_buzz_until_ms = 0;
static bool g_buzzing = false;
static uint32_t g_last_status_ms = 0;

class ServerCallbacks : public NimBLEServerCallbacks {
  void onConnect(NimBLEServer* server, NimBLEConnInfo& info) override {
    g_mtu = 23;
    g_connected = true;
    // Ask for a 7.5 ms connection interval (6 × 1.25 ms), latency 0, 4 s timeout. The host cannot
    // see the smallest wait for a connection event, which beats between 0 and
    // gcd(notification period, interval) as the clocks drift: 2.5 ms at 7.5 ms, 10 ms at 30 ms
    // (docs/clock.md, "Sample times per profile kind").
    server->updateConnParams(info.getConnHandle(), 6, 6, 0, 400);
  }
  void onDisconnect(NimBLEServer*, NimBLEConnInfo&, int) override {
    g_connected = false;
    NimBLEDevice::startAdvertising();
  }
  void onMTUChange(uint16_t mtu, NimBLEConnInfo&) override { g_mtu = mtu; }
};

class CommandCallbacks : public NimBLECharacteristicCallbacks {
  void onWrite(NimBLECharacteristic* characteristic, NimBLEConnInfo&) override {
    if (g_command_pending) {  // loop() has not taken the previous one yet
      g_flags |= so::kFlagCommandRejected;
      return;
    }
    NimBLEAttValue value = characteristic->getValue();
    g_command_len = value.size() < sizeof g_command ? value.size() : sizeof g_command;
    memcpy(g_command, value.data(), g_command_len);
    g_command_pending = true;
  }
};

static uint16_t battery_millivolts() {
#if defined(SENSORHUB_VBAT_PIN)
  return static_cast<uint16_t>(analogReadMilliVolts(SENSORHUB_VBAT_PIN) * SENSORHUB_VBAT_DIVIDER);
#else
  return 0;  // unknown
#endif
}

static uint8_t battery_percent(uint16_t mv) {
  if (mv == 0) return 0xFF;  // unknown
  // Linear between 3.3 V (empty under load) and 4.2 V (full) of a 1-cell LiPo: coarse, but the
  // host only shows it and warns below 15 %.
  if (mv <= 3300) return 0;
  if (mv >= 4200) return 100;
  return static_cast<uint8_t>((mv - 3300) * 100 / 900);
}

static void send_status() {
  uint8_t flags = g_flags;
  if (g_streaming) flags |= so::kFlagStreaming;
  const uint16_t mv = battery_millivolts();
  uint8_t packet[so::kStatusSize];
  const size_t n = so::encode_status(packet, battery_percent(mv), mv, flags);
  g_status->setValue(packet, n);
  if (g_connected) g_status->notify();
  g_last_status_ms = millis();
}

static void send_packet() {
  g_data->setValue(g_stream.packet(), g_stream.packet_size());
  g_data->notify();  // a notification the stack cannot queue is lost: the host sees the counter gap
}

static bool start_streaming() {
  const size_t fit = so::max_samples_for_mtu(g_mtu);
  if (fit == 0) return false;  // MTU 23: not even one sample fits; the central must exchange MTU first
  const uint32_t rate_hz = 1000000UL / g_stream.period_us();
  size_t wanted = rate_hz / kNotificationsPerSecond;
  if (wanted < 1) wanted = 1;
  g_stream.set_samples_per_packet(wanted < fit ? wanted : fit);
  g_stream.restart(0);
  g_next_sample_us = micros();
  g_streaming = true;
  return true;
}

static void handle_command() {
  so::Command cmd;
  const bool ok = so::parse_command(g_command, g_command_len, &cmd);
  g_command_pending = false;
  g_flags &= static_cast<uint8_t>(~so::kFlagCommandRejected);
  if (!ok) {
    g_flags |= so::kFlagCommandRejected;
    send_status();
    return;
  }
  switch (cmd.op) {
    case so::Opcode::kStart:
      if (!start_streaming()) g_flags |= so::kFlagCommandRejected;
      send_status();
      break;
    case so::Opcode::kStop:
      if (g_stream.flush()) send_packet();
      g_streaming = false;
      send_status();
      break;
    case so::Opcode::kSetRate:
      g_stream.set_period_us(cmd.period_us);
      if (g_streaming) start_streaming();  // the new period needs a new packet anyway
      break;
    case so::Opcode::kSetRanges:
      g_stream.set_ranges(cmd.ranges);  // encoding ranges; the library keeps the IMU's own range
      break;
    case so::Opcode::kBuzz:
#if defined(SENSORHUB_MOTOR_PIN)
      digitalWrite(SENSORHUB_MOTOR_PIN, HIGH);
      g_buzzing = true;
      g_buzz_until_ms = millis() + cmd.buzz_ms;
#else
      g_flags |= so::kFlagCommandRejected;  // no motor on this board
      send_status();
#endif
      break;
    case so::Opcode::kReadStatus:
      send_status();
      break;
  }
}

void setup() {
  Serial.begin(115200);
#if defined(SENSORHUB_MOTOR_PIN)
  pinMode(SENSORHUB_MOTOR_PIN, OUTPUT);
  digitalWrite(SENSORHUB_MOTOR_PIN, LOW);
#endif
  if (!IMU.begin()) {
    g_flags |= so::kFlagImuError;
    Serial.println("sensorhub_open: IMU not found");
  }

  NimBLEDevice::init("SH-Open");
  NimBLEDevice::setMTU(247);
  NimBLEServer* server = NimBLEDevice::createServer();
  server->setCallbacks(new ServerCallbacks());
  NimBLEService* service = server->createService(kServiceUuid);
  g_data = service->createCharacteristic(kDataUuid, NIMBLE_PROPERTY::NOTIFY);
  NimBLECharacteristic* command =
      service->createCharacteristic(kCommandUuid, NIMBLE_PROPERTY::WRITE | NIMBLE_PROPERTY::WRITE_NR);
  command->setCallbacks(new CommandCallbacks());
  g_status = service->createCharacteristic(kStatusUuid, NIMBLE_PROPERTY::READ | NIMBLE_PROPERTY::NOTIFY);
  service->start();
  send_status();  // initial value for reads

  NimBLEAdvertising* advertising = NimBLEDevice::getAdvertising();
  advertising->addServiceUUID(kServiceUuid);
  advertising->setName("SH-Open");
  advertising->start();
}

void loop() {
  if (g_command_pending) handle_command();
  if (g_streaming && !g_connected) g_streaming = false;

  if (g_streaming) {
    const uint32_t period = g_stream.period_us();
    const int32_t late_us = static_cast<int32_t>(micros() - g_next_sample_us);
    if (late_us >= static_cast<int32_t>(4 * period)) {
      // The loop stalled: the samples that were due are not invented; the counter skips them.
      const uint32_t missed = static_cast<uint32_t>(late_us) / period;
      if (g_stream.skip(static_cast<uint16_t>(missed))) send_packet();
      g_next_sample_us += missed * period;
    } else if (late_us >= 0) {
      float acc[3] = {0, 0, 0};
      float gyro[3] = {0, 0, 0};
      IMU.readAcceleration(acc[0], acc[1], acc[2]);  // latest output; IMU ODR >= sample rate
      IMU.readGyroscope(gyro[0], gyro[1], gyro[2]);
      // The scheduled time is the sample's device time: exact spacing, as period_us promises.
      if (g_stream.add(g_next_sample_us, acc, gyro)) send_packet();
      g_next_sample_us += period;
    }
  }

  const uint32_t now_ms = millis();
  if (g_buzzing && static_cast<int32_t>(now_ms - g_buzz_until_ms) >= 0) {
#if defined(SENSORHUB_MOTOR_PIN)
    digitalWrite(SENSORHUB_MOTOR_PIN, LOW);
#endif
    g_buzzing = false;
  }
  if (g_connected && now_ms - g_last_status_ms >= kStatusEveryMs) send_status();
}
