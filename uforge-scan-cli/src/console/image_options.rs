//! The options every command that makes an image shares (`image build`, `image generate`,
//! `template build`), defined once so that their names, value names, defaults and help cannot
//! drift apart.

use clap::Args;
use uforge_core::image::{NetworkPolicy, Target};

/// Where the image runs, its network and whether tuning may change the source's packages.
#[derive(Debug, Args)]
pub struct ImageOptions {
    /// Target platform: kvm, openstack, aws, gcp, azure, vmware, container, none (default:
    /// the format's usual one).
    #[arg(long, value_name = "TARGET")]
    pub target: Option<String>,
    /// `keep` the source's network configuration or set every interface to `dhcp`.
    #[arg(long, value_name = "POLICY", default_value = "keep")]
    pub network: String,
    /// Let the packages tuning adds upgrade, downgrade or remove packages of the source
    /// (default: every package stays at its scanned version; a conflict fails the build).
    #[arg(long)]
    pub allow_upgrades: bool,
}

impl ImageOptions {
    /// The target asked for, checked.
    pub fn target(&self) -> uforge_core::Result<Option<Target>> {
        self.target.as_deref().map(str::parse).transpose()
    }

    /// The network policy asked for, checked.
    pub fn network(&self) -> uforge_core::Result<NetworkPolicy> {
        self.network.parse()
    }
}
