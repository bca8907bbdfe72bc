//! A node's database on a size-limited file system (a tmpfs mounted under
//! the scenario's folder; this needs root), filled up and freed on
//! command: the disk-full scenario.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use super::cluster::Cluster;

impl Cluster {
    fn disk_of(&self, i: usize) -> PathBuf {
        self.dir().join("disks").join(&self.nodes[i].name)
    }

    /// Moves node `i`'s database (the node is down) onto a tmpfs of
    /// `bytes`, linked from its home.
    pub fn limit_disk(&mut self, i: usize, bytes: u64) {
        self.assert_down(i);
        let mount = self.disk_of(i);
        std::fs::create_dir_all(&mount).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&mount)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs failed ({status}): the disk-full scenario needs root"
        );
        self.mounts.push(mount.clone());
        let data = self.nodes[i].home.join("data");
        let on_disk = mount.join("data");
        let status = Command::new("cp")
            .arg("-a")
            .arg(&data)
            .arg(&on_disk)
            .status()
            .expect("cp runs");
        assert!(
            status.success(),
            "copying the database onto the tmpfs failed"
        );
        std::fs::remove_dir_all(&data).expect("remove data");
        std::os::unix::fs::symlink(&on_disk, &data).expect("link data");
    }

    /// Fills node `i`'s limited disk to the last byte with a filler file.
    pub fn fill_disk(&self, i: usize) -> u64 {
        let path = self.disk_of(i).join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 << 10];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        let _ = file.sync_all();
        written
    }

    /// Removes the filler from node `i`'s limited disk.
    pub fn free_disk(&self, i: usize) {
        std::fs::remove_file(self.disk_of(i).join("filler")).expect("remove filler");
    }
}
