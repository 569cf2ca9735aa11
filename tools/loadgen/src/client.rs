//! A gRPC client of `Authorization/Check` whose cost does not depend on the server:
//! requests are encoded once, before the runs, and sent as they are; an answer is
//! decoded only as far as [`Verdict`] needs. (Decoding ward's whole answer, identity
//! headers and metadata of ~440 bytes against the baseline's empty OK, kept the
//! generator's one CPU saturated on ward's runs only.)

use prost::Message as _;
use prost::bytes::{BufMut as _, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

use crate::verdict::Verdict;

const CHECK: &str = "/envoy.service.auth.v3.Authorization/Check";

/// A client on one HTTP/2 connection; clones share it.
#[derive(Clone)]
pub struct Client(tonic::client::Grpc<Channel>);

impl Client {
    pub fn new(channel: Channel) -> Self {
        Client(tonic::client::Grpc::new(channel))
    }

    /// Refuses answers larger than `limit` bytes.
    pub fn max_decoding_message_size(self, limit: usize) -> Self {
        Client(self.0.max_decoding_message_size(limit))
    }

    /// Connects to `http://{addr}` with TCP_NODELAY.
    pub async fn connect(addr: std::net::SocketAddr) -> Result<Self, String> {
        let ch = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self::new(ch))
    }

    /// Sends one encoded `CheckRequest`.
    pub async fn check(&mut self, req: Bytes) -> Result<Verdict, tonic::Status> {
        self.0
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(CHECK);
        let resp = self.0.unary(tonic::Request::new(req), path, Raw).await?;
        Ok(resp.into_inner())
    }
}

/// A message encoded once, to be sent as many times as wanted.
pub fn encode(msg: &impl prost::Message) -> Bytes {
    Bytes::from(msg.encode_to_vec())
}

/// Sends bytes as they are, decodes a [`Verdict`].
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Bytes;
    type Decode = Verdict;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Verdict;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Verdict>, tonic::Status> {
        Verdict::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable answer: {e}")))
    }
}
