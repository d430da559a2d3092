//! Firmware updates through power cuts: a device made of the node's updater and
//! embassy-boot's boot loader (`BootLoader::prepare_boot`, run here over the same simulated
//! flash), with the power cut at every flash write and erase in turn: of the download, the
//! swap mark, the swap itself, the confirmation, and a rollback's swap back.
//!
//! After every cut the device restarts from its boot loader; it must always run the old
//! image or the new one, byte for byte, and end confirmed on the new one or rolled back to
//! the old one.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::{Power, TestFlash, PAGE};
use embassy_boot::{BootLoader, BootLoaderConfig};
use futures::executor::block_on;
use weir_contract::firmware::version;
use weir_contract::{FirmwareChunk, FirmwareOffer, UpdateReport, UpdateState, CHUNK_LEN};
use weir_node::update::{Error as UpdateError, Updater, Updates};

/// The ACTIVE slot: 6 pages; DFU one page more; STATE one page.
const ACTIVE_PAGES: usize = 6;

fn image(seed: u8, len: usize) -> Vec<u8> {
    // Bytes that differ from page to page, so a page copied to the wrong place shows.
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

struct Keys(ed25519_compact::KeyPair);

impl Keys {
    fn new() -> Self {
        Keys(ed25519_compact::KeyPair::from_seed(
            ed25519_compact::Seed::new([42; 32]),
        ))
    }

    fn offer(&self, name: &str, image: &[u8]) -> FirmwareOffer {
        let digest = ed25519_compact::sha512::Hash::hash(image);
        let signature = self.0.sk.sign(digest, None);
        FirmwareOffer {
            version: version(name),
            size: image.len() as u32,
            signature: heapless::Vec::from_slice(signature.as_ref()).unwrap(),
        }
    }

    fn public(&self) -> [u8; 32] {
        *self.0.pk
    }
}

/// The device's flash: three partitions that lose power together.
struct Device {
    active: Rc<RefCell<Vec<u8>>>,
    dfu: Rc<RefCell<Vec<u8>>>,
    state: Rc<RefCell<Vec<u8>>>,
    power: Power,
}

/// What one start of the device did.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Outcome {
    /// Ran the old image and installed the new one: restart to swap.
    Marked,
    /// Ran the new image and confirmed it.
    Confirmed,
    /// Ran the new image and stopped without confirming (a bad image).
    Unconfirmed,
    /// Ran the old image after a rollback and refused the failed image.
    RolledBack,
    /// Ran the new, confirmed image: nothing to do.
    UpToDate,
}

impl Device {
    fn new(old: &[u8]) -> Self {
        let mut active = vec![0xFF; ACTIVE_PAGES * PAGE];
        active[..old.len()].copy_from_slice(old);
        Device {
            active: Rc::new(RefCell::new(active)),
            dfu: Rc::new(RefCell::new(vec![0xFF; (ACTIVE_PAGES + 1) * PAGE])),
            state: Rc::new(RefCell::new(vec![0xFF; PAGE])),
            power: Rc::new(Cell::new(None)),
        }
    }

    fn flash(&self, bytes: &Rc<RefCell<Vec<u8>>>) -> TestFlash {
        TestFlash::over(bytes, &self.power)
    }

    /// The boot loader's part of a start.
    fn boot(&self) -> Result<(), embassy_boot::BootError> {
        let mut loader = BootLoader::new(BootLoaderConfig {
            active: self.flash(&self.active),
            dfu: self.flash(&self.dfu),
            state: self.flash(&self.state),
        });
        let mut buf = [0u8; PAGE];
        loader.prepare_boot(&mut buf).map(|_| ())
    }

    /// Which image the ACTIVE slot holds: panics if neither, whole.
    fn running<'a>(&self, old: &'a [u8], new: &'a [u8]) -> &'static str {
        let active = self.active.borrow();
        if active[..new.len()] == *new {
            "new"
        } else if active[..old.len()] == *old {
            "old"
        } else {
            panic!("the ACTIVE slot holds neither image: a broken firmware would run");
        }
    }

    /// The application's part of a start: the node's updater, fed the gateway's offer and
    /// chunks as the node asks for them. `good`: whether the new image, once running,
    /// manages to report (and so confirms).
    fn run_app(
        &self,
        keys: &Keys,
        running: &str,
        offer: &FirmwareOffer,
        new: &[u8],
        good: bool,
    ) -> Result<Outcome, UpdateError> {
        let mut aligned = [0u8; 4];
        let mut updater = Updater::new(
            self.flash(&self.dfu),
            self.flash(&self.state),
            &mut aligned,
            keys.public(),
            running,
            (ACTIVE_PAGES * PAGE) as u32,
        );
        block_on(async {
            updater.start().await?;
            if running == "new" {
                if !good {
                    return Ok(Outcome::Unconfirmed);
                }
                return Ok(match updater.confirm().await? {
                    Some(r) => {
                        assert_eq!(r.state, UpdateState::Installed);
                        Outcome::Confirmed
                    }
                    None => Outcome::UpToDate,
                });
            }
            let mut report: Option<UpdateReport> = updater.offer(Some(offer)).await?;
            loop {
                let r = report.expect("the updater always answers an offer it has not refused");
                match r.state {
                    UpdateState::Fetching => {
                        let at = r.offset as usize;
                        let end = (at + CHUNK_LEN).min(new.len());
                        let chunk = FirmwareChunk {
                            version: offer.version.clone(),
                            offset: r.offset,
                            data: heapless::Vec::from_slice(&new[at..end]).unwrap(),
                        };
                        report = updater.chunk(&chunk).await?;
                    }
                    UpdateState::Installing => {
                        assert!(updater.reboot_due());
                        return Ok(Outcome::Marked);
                    }
                    UpdateState::RolledBack => return Ok(Outcome::RolledBack),
                    other => panic!("unexpected report {other:?}"),
                }
            }
        })
    }
}

/// Runs the device from its boot loader until it settles, with the power cut once at flash
/// operation `cut` (counted from the first start), and restarts after the cut. Returns the
/// final outcome and whether the cut happened.
fn update_with_cut(cut: Option<u32>, good: bool) -> (Outcome, bool, u32) {
    let keys = Keys::new();
    let old = image(0x11, 3 * PAGE + 100);
    let new = image(0x77, 4 * PAGE + 1234);
    let offer = keys.offer("new", &new);
    let device = Device::new(&old);
    device.power.set(Some(cut.unwrap_or(u32::MAX)));
    let mut cut_happened = false;
    let mut starts = 0;
    loop {
        starts += 1;
        assert!(starts < 20, "the device never settles");
        let result = device.boot().map_err(|_| ()).and_then(|()| {
            let running = device.running(&old, &new);
            device
                .run_app(&keys, running, &offer, &new, good)
                .map_err(|e| {
                    assert_eq!(
                        e,
                        UpdateError::Flash(
                            embedded_storage_async::nor_flash::NorFlashErrorKind::Other
                        )
                    )
                })
        });
        match result {
            Err(()) => {
                // Power cut: it comes back, and the device starts again.
                assert_eq!(device.power.get(), Some(0), "only a power cut may fail");
                cut_happened = true;
                device.power.set(None);
            }
            Ok(Outcome::Marked | Outcome::Unconfirmed) => {} // restart
            Ok(done @ (Outcome::Confirmed | Outcome::RolledBack | Outcome::UpToDate)) => {
                // One more start, without cuts: it runs what it settled on.
                device.power.set(None);
                device.boot().unwrap();
                let running = device.running(&old, &new);
                match done {
                    Outcome::Confirmed | Outcome::UpToDate => assert_eq!(running, "new"),
                    _ => assert_eq!(running, "old"),
                }
                let used = cut.map_or(0, |c| c);
                return (done, cut_happened, used);
            }
        }
    }
}

fn operations(good: bool) -> u32 {
    // The flash operations of an update: the first cut point that is never reached.
    let mut n = 0;
    while update_with_cut(Some(n), good).1 {
        n += 1;
    }
    n
}

#[test]
fn without_a_cut_a_good_image_is_installed_and_confirmed() {
    assert_eq!(update_with_cut(None, true).0, Outcome::Confirmed);
}

#[test]
fn without_a_cut_an_image_that_never_reports_is_rolled_back() {
    assert_eq!(update_with_cut(None, false).0, Outcome::RolledBack);
}

#[test]
fn a_power_cut_at_any_flash_operation_leaves_a_whole_image_and_ends_confirmed_or_rolled_back() {
    let total = operations(true);
    // The download (35 pieces of 512 bytes, 5 pages erased), the swap mark, the swap of 6
    // pages (each page erased, written and its progress recorded on both sides), the
    // confirmation.
    assert!(total > 80, "only {total} flash operations in an update");
    let mut confirmed = 0;
    let mut rolled_back = 0;
    for cut in 0..total {
        let (outcome, happened, _) = update_with_cut(Some(cut), true);
        assert!(happened, "cut {cut} did not happen");
        match outcome {
            Outcome::Confirmed | Outcome::UpToDate => confirmed += 1,
            Outcome::RolledBack => rolled_back += 1,
            other => panic!("cut {cut}: ended {other:?}"),
        }
    }
    // A cut while the confirmation is written may leave it unwritten: the boot loader then
    // rolls back, as it must for an image that did not confirm. Every other cut ends
    // confirmed.
    assert!(
        confirmed >= total as usize - 3,
        "{confirmed} of {total} confirmed, {rolled_back} rolled back"
    );
    println!("{total} cut points: {confirmed} confirmed, {rolled_back} rolled back");
}

#[test]
fn a_power_cut_at_any_flash_operation_of_a_bad_image_ends_rolled_back_on_the_old_one() {
    let total = operations(false);
    assert!(total > 80, "only {total} flash operations");
    for cut in 0..total {
        let (outcome, happened, _) = update_with_cut(Some(cut), false);
        assert!(happened, "cut {cut} did not happen");
        assert_eq!(outcome, Outcome::RolledBack, "cut {cut}");
    }
}

#[test]
fn an_image_with_a_bad_signature_is_refused_and_the_old_one_kept() {
    let keys = Keys::new();
    let old = image(0x11, 2 * PAGE);
    let new = image(0x77, PAGE + 10);
    let mut offer = keys.offer("new", &new);
    offer.signature[0] ^= 1;
    let device = Device::new(&old);
    let mut aligned = [0u8; 4];
    let mut updater = Updater::new(
        device.flash(&device.dfu),
        device.flash(&device.state),
        &mut aligned,
        keys.public(),
        "old",
        (ACTIVE_PAGES * PAGE) as u32,
    );
    let last = block_on(async {
        updater.start().await.unwrap();
        let mut r = updater.offer(Some(&offer)).await.unwrap().unwrap();
        while r.state == UpdateState::Fetching {
            let at = r.offset as usize;
            let end = (at + CHUNK_LEN).min(new.len());
            let chunk = FirmwareChunk {
                version: offer.version.clone(),
                offset: r.offset,
                data: heapless::Vec::from_slice(&new[at..end]).unwrap(),
            };
            r = updater.chunk(&chunk).await.unwrap().unwrap();
        }
        // Offered again (at the next connection): not downloaded again.
        assert_eq!(updater.offer(Some(&offer)).await.unwrap(), None);
        r
    });
    assert_eq!(last.state, UpdateState::Refused);
    assert!(!updater.reboot_due());
    device.boot().unwrap();
    assert_eq!(device.running(&old, &new), "old");
}

#[test]
fn after_a_reconnection_the_node_asks_for_the_piece_it_is_missing() {
    let keys = Keys::new();
    let old = image(0x11, 2 * PAGE);
    let new = image(0x77, 3 * PAGE);
    let offer = keys.offer("new", &new);
    let device = Device::new(&old);
    let mut aligned = [0u8; 4];
    let mut updater = Updater::new(
        device.flash(&device.dfu),
        device.flash(&device.state),
        &mut aligned,
        keys.public(),
        "old",
        (ACTIVE_PAGES * PAGE) as u32,
    );
    block_on(async {
        updater.start().await.unwrap();
        let mut r = updater.offer(Some(&offer)).await.unwrap().unwrap();
        for _ in 0..11 {
            let at = r.offset as usize;
            let chunk = FirmwareChunk {
                version: offer.version.clone(),
                offset: r.offset,
                data: heapless::Vec::from_slice(&new[at..at + CHUNK_LEN]).unwrap(),
            };
            r = updater.chunk(&chunk).await.unwrap().unwrap();
        }
        assert_eq!(r.offset, 11 * CHUNK_LEN as u32);
        // The link drops; at the next connection the retained offer comes again.
        let again = updater.offer(Some(&offer)).await.unwrap().unwrap();
        assert_eq!(
            (again.state, again.offset),
            (UpdateState::Fetching, 11 * CHUNK_LEN as u32)
        );
        // A piece sent twice is ignored.
        let stale = FirmwareChunk {
            version: offer.version.clone(),
            offset: 0,
            data: heapless::Vec::from_slice(&new[..CHUNK_LEN]).unwrap(),
        };
        assert_eq!(updater.chunk(&stale).await.unwrap(), None);
        assert_eq!(updater.retry().unwrap().offset, 11 * CHUNK_LEN as u32);
    });
}

/// The whole node (sampling, queue, acks) with its updater, over the test link: the gateway's
/// part is played here from what the node publishes.
mod node_with_updates {
    use super::*;
    use common::{LinkEvent, Rig};
    use weir_contract::topic::Channel;
    use weir_contract::{Encoding, Message as _};
    use weir_node::Settings;

    fn updater<'a>(
        device: &Device,
        aligned: &'a mut [u8; 4],
        keys: &Keys,
        running: &str,
    ) -> Updater<'a, TestFlash, TestFlash> {
        Updater::new(
            device.flash(&device.dfu),
            device.flash(&device.state),
            aligned,
            keys.public(),
            running,
            (ACTIVE_PAGES * PAGE) as u32,
        )
    }

    fn reports(rig: &Rig) -> Vec<UpdateReport> {
        rig.link
            .borrow()
            .sent
            .iter()
            .filter(|(c, _, _)| *c == Channel::Update)
            .map(|(_, p, _)| UpdateReport::decode(p).unwrap())
            .collect()
    }

    fn send(rig: &Rig, channel: Channel, payload: Vec<u8>) {
        rig.link
            .borrow_mut()
            .events
            .push_back(LinkEvent::Message(channel, payload));
    }

    #[test]
    fn a_node_downloads_an_offer_restarts_into_it_and_confirms_at_its_first_ack() {
        let keys = Keys::new();
        let old = image(0x11, 2 * PAGE);
        let new = image(0x77, 2 * PAGE + 700);
        let offer = keys.offer("new", &new);
        let device = Device::new(&old);
        let rig = Rig::new(8);
        rig.connect();
        let mut aligned = [0u8; 4];
        let mut node = rig
            .try_start_with(
                updater(&device, &mut aligned, &keys, "old"),
                Settings {
                    firmware: "old",
                    ..Settings::default()
                },
            )
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = offer.encode(Encoding::Binary, &mut buf).unwrap();
        send(&rig, Channel::Firmware, buf[..n].to_vec());
        // Play the gateway: answer each request with its piece.
        let mut answered = 0;
        for _ in 0..100 {
            rig.run_for(&mut node, 1000);
            let r = reports(&rig);
            let Some(last) = r.last() else { continue };
            if last.state == UpdateState::Installing {
                break;
            }
            if r.len() > answered && last.state == UpdateState::Fetching {
                answered = r.len();
                let at = last.offset as usize;
                let chunk = FirmwareChunk {
                    version: offer.version.clone(),
                    offset: last.offset,
                    data: heapless::Vec::from_slice(&new[at..(at + CHUNK_LEN).min(new.len())])
                        .unwrap(),
                };
                let n = chunk.encode(Encoding::Binary, &mut buf).unwrap();
                send(&rig, Channel::Chunk, buf[..n].to_vec());
            }
        }
        assert_eq!(reports(&rig).last().unwrap().state, UpdateState::Installing);
        assert!(node.reboot_due());
        drop(node);

        // The restart: the boot loader swaps; the new image runs on trial.
        device.boot().unwrap();
        assert_eq!(device.running(&old, &new), "new");
        rig.link.borrow_mut().auto_ack = true;
        let mut aligned = [0u8; 4];
        let mut node = rig
            .try_start_with(
                updater(&device, &mut aligned, &keys, "new"),
                Settings {
                    firmware: "new",
                    ..Settings::default()
                },
            )
            .unwrap();
        rig.connect();
        // No confirmation before the gateway acknowledges something.
        assert!(!reports(&rig)
            .iter()
            .any(|r| r.state == UpdateState::Installed));
        rig.run_for(&mut node, 20 * 60_000);
        let installed: Vec<_> = reports(&rig)
            .into_iter()
            .filter(|r| r.state == UpdateState::Installed)
            .collect();
        assert_eq!(installed.len(), 1);
        assert_eq!(installed[0].version.as_str(), "new");
        // Confirmed: past the trial limit, no restart is due, and the boot loader keeps it.
        assert!(!node.reboot_due());
        drop(node);
        device.boot().unwrap();
        assert_eq!(device.running(&old, &new), "new");
    }

    #[test]
    fn a_new_image_that_never_gets_an_ack_restarts_after_the_trial_limit_and_is_rolled_back() {
        let keys = Keys::new();
        let old = image(0x11, 2 * PAGE);
        let new = image(0x77, PAGE + 100);
        let offer = keys.offer("new", &new);
        let device = Device::new(&old);
        // Download and mark with the updater alone, then restart into the new image.
        assert_eq!(
            device.run_app(&keys, "old", &offer, &new, true).unwrap(),
            Outcome::Marked
        );
        device.boot().unwrap();
        assert_eq!(device.running(&old, &new), "new");
        let rig = Rig::new(8);
        rig.connect(); // connected, but the gateway never acknowledges
        let mut aligned = [0u8; 4];
        let settings = Settings {
            firmware: "new",
            trial_limit_s: 630,
            ..Settings::default()
        };
        let mut node = rig
            .try_start_with(updater(&device, &mut aligned, &keys, "new"), settings)
            .unwrap();
        // The test clock jumps from sample to sample (a minute): 600 s, then 660 s.
        rig.run_for(&mut node, 590_000);
        assert!(rig.now_ms() < 630_000);
        assert!(!node.reboot_due(), "restarted before the trial limit");
        rig.run_for(&mut node, 60_000);
        assert!(
            node.reboot_due(),
            "still on an unconfirmed image after the trial limit"
        );
        drop(node);
        device.boot().unwrap();
        assert_eq!(
            device.running(&old, &new),
            "old",
            "the boot loader rolled back"
        );
    }
}
