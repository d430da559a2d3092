//! What the benchmarks measure with: CPU seconds, peak memory, free ports.

use std::net::TcpListener;

/// A free TCP port on loopback.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// This process's peak resident memory since the last [`reset_peak_rss`], KiB.
pub fn peak_rss_kib() -> u64 {
    proc_field("/proc/self/status", "VmHWM:", 1)
}

/// The `column`th word (from 0) of the line of `/proc` file `path` that starts with `key`, as
/// a number; 0 if the file, the line or the number is not there.
pub fn proc_field(path: &str, key: &str, column: usize) -> u64 {
    field_of(
        &std::fs::read_to_string(path).unwrap_or_default(),
        key,
        column,
    )
}

fn field_of(text: &str, key: &str, column: usize) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(column)?.parse().ok())
        .unwrap_or(0)
}

/// Starts counting this process's peak resident memory afresh (Linux: `clear_refs` 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Clock ticks per second of /proc's times (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// Fields of `/proc/{who}/stat` after the command name (which may hold spaces).
fn stat_fields(who: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{who}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default()
}

/// CPU seconds (user + system) used so far by process `who` (`self` or a pid), its
/// waited-for children included when `children`; 0 if it cannot be read.
fn cpu_of(who: &str, children: bool) -> f64 {
    let f = stat_fields(who);
    // utime, stime, cutime, cstime: fields 14-17 of the line, 11-14 after the name (0-based).
    let own = f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
    let waited = f.get(13).unwrap_or(&0) + f.get(14).unwrap_or(&0);
    (if children { waited } else { own }) as f64 / TICKS
}

/// CPU seconds used so far by this process.
pub fn cpu_self() -> f64 {
    cpu_of("self", false)
}

/// CPU seconds used by this process's waited-for children.
pub fn cpu_children() -> f64 {
    cpu_of("self", true)
}

/// CPU seconds used so far by process `pid`.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    cpu_of(&pid.to_string(), false)
}

/// Resident memory of process `pid` now and at its peak, KiB (from /proc; 0 if unreadable).
pub fn process_rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    (
        field_of(&status, "VmRSS:", 1),
        field_of(&status, "VmHWM:", 1),
    )
}

/// Starts Mosquitto on a free loopback port with `extra` configuration lines, and waits until
/// it takes connections.
pub async fn mosquitto(
    dir: &std::path::Path,
    extra: &str,
) -> anyhow::Result<(std::process::Child, u16)> {
    use anyhow::Context as _;
    let port = free_port()?;
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}"),
    )?;
    let mut child = std::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting mosquitto (Debian package mosquitto)")?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            anyhow::bail!("mosquitto did not start on port {port}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok((child, port))
}

/// The `weir` binary built next to this one.
pub fn weir_binary() -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::current_exe()?.with_file_name("weir");
    anyhow::ensure!(
        path.exists(),
        "{} not found: build it first (cargo build --release -p weir-gateway)",
        path.display()
    );
    Ok(path)
}

/// A child process killed when dropped.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Percentile `p` (0-100) of sorted `xs`, nearest rank.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

/// A directory of its own under the system's temporary directory, removed when dropped.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// Creates `weir-bench-{pid}-{name}`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("weir-bench-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
