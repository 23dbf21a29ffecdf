//! `SUBSCRIBE`, `SUBACK`, `UNSUBSCRIBE`, `UNSUBACK` (3.8-3.11).

use bytes::Bytes;

use crate::mqtt::error::{DecodeError, PropertyContext, Violation};
use crate::mqtt::property::Properties;
use crate::mqtt::wire::{check_string, Reader, SinkExt};
use crate::mqtt::{PacketType, ProtocolVersion, QoS, ReasonCode};

/// When the server sends retained messages for a new subscription (5.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: at subscribe time.
    #[default]
    SendAtSubscribe,
    /// 1: at subscribe time, if the subscription did not exist.
    SendIfNew,
    /// 2: never.
    DoNotSend,
}

/// A subscription's options byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// The maximum QoS of deliveries.
    pub qos: QoS,
    /// 5.0 No Local: not sent its own publications.
    pub no_local: bool,
    /// 5.0 Retain As Published: RETAIN kept on forwarded messages.
    pub retain_as_published: bool,
    /// 5.0 Retain Handling.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with only a QoS (all 3.1.1 can say).
    pub fn qos(qos: QoS) -> Self {
        SubscriptionOptions { qos, ..Self::default() }
    }

    fn decode(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
        if byte & reserved != 0 {
            return Err(DecodeError::SubscriptionReservedBits);
        }
        let qos = QoS::from_bits(byte & 3).ok_or(DecodeError::InvalidQos)?;
        let retain_handling = match (byte >> 4) & 3 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(Violation::InvalidRetainHandling.into()),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & 0x04 != 0,
            retain_as_published: byte & 0x08 != 0,
            retain_handling,
        })
    }

    /// Reads the options byte of a `SUBSCRIBE` (or of a stored subscription).
    pub(crate) fn from_byte(byte: u8, version: ProtocolVersion) -> Result<Self, DecodeError> {
        Self::decode(byte, version)
    }

    /// The options byte as `SUBSCRIBE` carries it.
    pub(crate) fn to_byte(self) -> u8 {
        self.byte()
    }

    fn byte(&self) -> u8 {
        self.qos.bits()
            | if self.no_local { 0x04 } else { 0 }
            | if self.retain_as_published { 0x08 } else { 0 }
            | ((self.retain_handling as u8) << 4)
    }
}

/// One topic filter of a `SUBSCRIBE` and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The topic filter (`+` and `#` wildcards, `$share/group/filter`); its syntax is the
    /// server's to judge ([`valid_topic_filter`](crate::mqtt::valid_topic_filter)), and a
    /// bad one is refused in `SUBACK`, not by the codec.
    pub filter: Bytes,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// `SUBSCRIBE`: a client subscribes to one or more topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The packet identifier (non-zero).
    pub packet_id: u16,
    /// 5.0 properties (a Subscription Identifier, User Properties).
    pub properties: Properties,
    /// At least one subscription.
    pub subscriptions: Vec<Subscription>,
}

/// Reads a packet identifier and (5.0) properties: the variable header of the four
/// packets of this module.
fn id_and_properties(
    r: &mut Reader,
    packet: PacketType,
    version: ProtocolVersion,
) -> Result<(u16, Properties), DecodeError> {
    let id = r.u16()?;
    let properties = if version.is_v5() {
        Properties::decode(r, PropertyContext::Packet(packet))?
    } else {
        Properties::default()
    };
    Ok((id, properties))
}

fn check_common(
    packet: PacketType,
    id: u16,
    props: &Properties,
    len: usize,
    version: ProtocolVersion,
) -> Result<(), Violation> {
    if id == 0 {
        return Err(Violation::ZeroPacketId);
    }
    if !version.is_v5() && !props.is_empty() {
        return Err(Violation::NotInV3(packet));
    }
    // A 3.1.1 UNSUBACK has no payload.
    if len == 0 && (version.is_v5() || packet != PacketType::UnsubAck) {
        return Err(Violation::EmptyList(packet));
    }
    Ok(())
}

fn header_len(props: &Properties, version: ProtocolVersion) -> usize {
    2 + if version.is_v5() { props.encoded_len() } else { 0 }
}

fn write_header<S: SinkExt + ?Sized>(id: u16, props: &Properties, version: ProtocolVersion, out: &mut S) {
    out.put_u16(id);
    if version.is_v5() {
        props.write(out);
    }
}

impl Subscribe {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Subscribe, DecodeError> {
        let (packet_id, properties) = id_and_properties(r, PacketType::Subscribe, version)?;
        let mut subscriptions = Vec::new();
        while !r.is_empty() {
            let filter = r.string()?;
            let options = SubscriptionOptions::decode(r.u8()?, version)?;
            subscriptions.push(Subscription { filter, options });
        }
        Ok(Subscribe {
            packet_id,
            properties,
            subscriptions,
        })
    }

    pub(crate) fn validate(&self, version: ProtocolVersion) -> Result<(), Violation> {
        check_common(
            PacketType::Subscribe,
            self.packet_id,
            &self.properties,
            self.subscriptions.len(),
            version,
        )?;
        for s in &self.subscriptions {
            let o = &s.options;
            if !version.is_v5()
                && (o.no_local || o.retain_as_published || o.retain_handling != RetainHandling::default())
            {
                return Err(Violation::SubscriptionOptionsInV3);
            }
            if o.no_local && s.filter.starts_with(b"$share/") {
                return Err(Violation::NoLocalOnSharedSubscription);
            }
        }
        Ok(())
    }

    pub(crate) fn check_fields(&self) -> Result<(), Violation> {
        self.properties
            .validate(PropertyContext::Packet(PacketType::Subscribe))?;
        self.subscriptions.iter().try_for_each(|s| check_string(&s.filter))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        header_len(&self.properties, version) + self.subscriptions.iter().map(|s| 2 + s.filter.len() + 1).sum::<usize>()
    }

    pub(crate) fn write<S: SinkExt + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        write_header(self.packet_id, &self.properties, version, out);
        for s in &self.subscriptions {
            out.put_field(&s.filter);
            out.put_u8(s.options.byte());
        }
    }
}

/// `SUBACK` or `UNSUBACK`: a code per topic filter of the request (3.1.1's `UNSUBACK`
/// carries none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The request's packet identifier.
    pub packet_id: u16,
    /// 5.0 properties.
    pub properties: Properties,
    /// One code per topic filter, in order: the granted QoS or a failure.
    pub codes: Vec<ReasonCode>,
}

impl SubAck {
    pub(crate) fn decode(r: &mut Reader, packet: PacketType, version: ProtocolVersion) -> Result<SubAck, DecodeError> {
        let (packet_id, properties) = id_and_properties(r, packet, version)?;
        let mut codes = Vec::with_capacity(r.remaining());
        while !r.is_empty() {
            let raw = r.u8()?;
            codes.push(ReasonCode::from_u8(raw).ok_or(Violation::InvalidReasonCode { packet, code: raw })?);
        }
        Ok(SubAck {
            packet_id,
            properties,
            codes,
        })
    }

    pub(crate) fn validate(&self, packet: PacketType, version: ProtocolVersion) -> Result<(), Violation> {
        check_common(packet, self.packet_id, &self.properties, self.codes.len(), version)?;
        if packet == PacketType::UnsubAck && !version.is_v5() && !self.codes.is_empty() {
            return Err(Violation::NotInV3(packet));
        }
        Ok(())
    }

    pub(crate) fn check_fields(&self, packet: PacketType) -> Result<(), Violation> {
        self.properties.validate(PropertyContext::Packet(packet))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        header_len(&self.properties, version) + self.codes.len()
    }

    pub(crate) fn write<S: SinkExt + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        write_header(self.packet_id, &self.properties, version, out);
        for c in &self.codes {
            out.put_u8(c.as_u8());
        }
    }
}

/// `UNSUBSCRIBE`: a client removes one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The packet identifier (non-zero).
    pub packet_id: u16,
    /// 5.0 properties (User Properties).
    pub properties: Properties,
    /// At least one topic filter.
    pub filters: Vec<Bytes>,
}

impl Unsubscribe {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
        let (packet_id, properties) = id_and_properties(r, PacketType::Unsubscribe, version)?;
        let mut filters = Vec::new();
        while !r.is_empty() {
            filters.push(r.string()?);
        }
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters,
        })
    }

    pub(crate) fn validate(&self, version: ProtocolVersion) -> Result<(), Violation> {
        check_common(
            PacketType::Unsubscribe,
            self.packet_id,
            &self.properties,
            self.filters.len(),
            version,
        )
    }

    pub(crate) fn check_fields(&self) -> Result<(), Violation> {
        self.properties
            .validate(PropertyContext::Packet(PacketType::Unsubscribe))?;
        self.filters.iter().try_for_each(|f| check_string(f))
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        header_len(&self.properties, version) + self.filters.iter().map(|f| 2 + f.len()).sum::<usize>()
    }

    pub(crate) fn write<S: SinkExt + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        write_header(self.packet_id, &self.properties, version, out);
        for f in &self.filters {
            out.put_field(f);
        }
    }
}
