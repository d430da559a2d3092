//! The configuration image: what `weir node provision` writes and a board reads at start.

use weir_contract::{Calibration, NodeConfig};
use weir_node::provision::{
    parse, parse_ipv4, Broker, FlowSensor, Network, Provision, ProvisionError, SensorSet,
    TurbiditySensor, Ultrasonic, IMAGE_LEN, MAGIC,
};

fn sample() -> Provision {
    let mut config = NodeConfig {
        tank_depth_m: Some(2.5),
        sensor_height_m: Some(3.1),
        ..NodeConfig::default()
    };
    config.calibration.turbidity_ntu = Some(Calibration {
        offset: -0.4,
        scale: 1.02,
    });
    Provision {
        terminal: "HY-017".try_into().unwrap(),
        password: "k3V9-xq7Lm2pR8wT".try_into().unwrap(),
        broker: Broker {
            host: "weir.county.example".try_into().unwrap(),
            port: 1883,
        },
        topic_prefix: "weir".try_into().unwrap(),
        time_server: "cn.pool.ntp.org".try_into().unwrap(),
        network: Network::Dhcp,
        sensors: SensorSet {
            modbus_baud: 9600,
            turbidity: Some(TurbiditySensor::Modbus { slave: 1 }),
            flow: Some(FlowSensor::Modbus { slave: 2 }),
            sludge: Some(Ultrasonic::default()),
        },
        config,
    }
}

fn image(p: &Provision) -> [u8; IMAGE_LEN] {
    let mut out = [0u8; IMAGE_LEN];
    p.write(&mut out).unwrap();
    out
}

#[test]
fn an_image_reads_back_as_written() {
    let p = sample();
    let img = image(&p);
    assert_eq!(&img[..8], &MAGIC);
    assert_eq!(parse(&img).unwrap(), p);

    let mut fixed = sample();
    fixed.network = Network::Static {
        address: [192, 168, 8, 20],
        prefix_len: 24,
        gateway: [192, 168, 8, 1],
        dns: [192, 168, 8, 1],
    };
    fixed.broker.host = "10.20.0.5".try_into().unwrap();
    fixed.sensors.flow = Some(FlowSensor::Pulse {
        pulses_per_m3: 100.0,
    });
    fixed.sensors.turbidity = Some(TurbiditySensor::Loop {
        at_4ma: 0.0,
        at_20ma: 1000.0,
    });
    let back = parse(&image(&fixed)).unwrap();
    assert_eq!(back, fixed);
    assert_eq!(back.broker.ipv4(), Some([10, 20, 0, 5]));
}

#[test]
fn the_rest_of_the_sector_stays_erased() {
    let img = image(&sample());
    let n = u16::from_le_bytes([img[10], img[11]]) as usize;
    assert!(
        n > 40,
        "a body of {n} bytes is too short to hold the sample"
    );
    assert!(img[12 + n + 4..].iter().all(|&b| b == 0xFF));
}

#[test]
fn an_erased_sector_is_blank_not_corrupt() {
    assert_eq!(parse(&[0xFF; IMAGE_LEN]), Err(ProvisionError::Blank));
    assert_eq!(parse(&[0x00; IMAGE_LEN]), Err(ProvisionError::NotAnImage));
}

#[test]
fn every_flipped_bit_in_header_body_or_crc_is_caught() {
    let img = image(&sample());
    let n = u16::from_le_bytes([img[10], img[11]]) as usize;
    for byte in 0..12 + n + 4 {
        for bit in 0..8 {
            let mut bad = img;
            bad[byte] ^= 1 << bit;
            let got = parse(&bad);
            assert!(got.is_err(), "byte {byte} bit {bit}: {got:?}");
        }
    }
}

#[test]
fn a_newer_format_and_an_overlong_body_are_named() {
    let mut img = image(&sample());
    img[8] = 2;
    assert_eq!(parse(&img), Err(ProvisionError::Format(2)));
    let mut img = image(&sample());
    img[10..12].copy_from_slice(&5000u16.to_le_bytes());
    assert_eq!(parse(&img), Err(ProvisionError::Length(5000)));
    assert_eq!(parse(&img[..6]), Err(ProvisionError::NotAnImage));
}

type Spoil = Box<dyn Fn(&mut Provision)>;

#[test]
fn a_wrong_field_is_refused_when_written_and_named() {
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "terminal",
            Box::new(|p| p.terminal = "HY/017".try_into().unwrap()),
        ),
        ("password", Box::new(|p| p.password.clear())),
        (
            "broker.host",
            Box::new(|p| p.broker.host = "weir county".try_into().unwrap()),
        ),
        ("broker.port", Box::new(|p| p.broker.port = 0)),
        ("time_server", Box::new(|p| p.time_server.clear())),
        (
            "topic_prefix",
            Box::new(|p| p.topic_prefix = "weir/x".try_into().unwrap()),
        ),
        (
            "sensors.turbidity.slave",
            Box::new(|p| p.sensors.turbidity = Some(TurbiditySensor::Modbus { slave: 0 })),
        ),
        (
            "sensors",
            Box::new(|p| p.sensors.flow = Some(FlowSensor::Modbus { slave: 1 })),
        ),
        (
            "sensors.flow.pulses_per_m3",
            Box::new(|p| p.sensors.flow = Some(FlowSensor::Pulse { pulses_per_m3: 0.0 })),
        ),
        (
            "sensors.modbus_baud",
            Box::new(|p| p.sensors.modbus_baud = 300),
        ),
        ("config", Box::new(|p| p.config.sensor_height_m = None)),
        ("config", Box::new(|p| p.config.sample_interval_s = 1)),
        (
            "network.prefix_len",
            Box::new(|p| {
                p.network = Network::Static {
                    address: [10, 0, 0, 2],
                    prefix_len: 33,
                    gateway: [10, 0, 0, 1],
                    dns: [10, 0, 0, 1],
                }
            }),
        ),
    ];
    for (field, spoil) in cases {
        let mut p = sample();
        spoil(&mut p);
        let mut out = [0u8; IMAGE_LEN];
        match p.write(&mut out) {
            Err(ProvisionError::Invalid(f, why)) => {
                assert_eq!(f, field, "{why}");
                assert!(!why.is_empty());
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn ipv4_text_is_read_strictly() {
    assert_eq!(parse_ipv4("192.168.1.10"), Some([192, 168, 1, 10]));
    for s in [
        "192.168.1",
        "192.168.1.10.1",
        "256.1.1.1",
        "1..1.1",
        "a.b.c.d",
        " 1.1.1.1",
        "1.1.1.0001",
    ] {
        assert_eq!(parse_ipv4(s), None, "{s}");
    }
}
