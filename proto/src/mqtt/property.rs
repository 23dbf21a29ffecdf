//! 5.0 properties (section 2.2.2): every identifier from 0x01 to 0x2A with its data type
//! and the packets it may appear in, parsed into one typed [`Properties`] record.

use bytes::Bytes;

use super::error::{DecodeError, PropertyContext, Violation};
use super::wire::{check_binary, check_string, vbi_len, Reader, SinkExt, VBI_MAX};
use super::{PacketType, QoS};

/// The data type of a property's value (1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyType {
    /// One byte.
    Byte,
    /// A big-endian 16-bit integer.
    TwoByteInteger,
    /// A big-endian 32-bit integer.
    FourByteInteger,
    /// A Variable Byte Integer.
    VariableByteInteger,
    /// A UTF-8 Encoded String.
    Utf8String,
    /// Binary Data.
    BinaryData,
    /// A UTF-8 String Pair.
    Utf8StringPair,
}

macro_rules! properties {
    ($($(#[$doc:meta])* $name:ident = $id:literal, $ty:ident, [$($ctx:ident),*];)*) => {
        /// A property identifier (Table 2-4).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum PropertyId {
            $($(#[$doc])* $name = $id,)*
        }

        impl PropertyId {
            /// Every property, in numeric order.
            pub const ALL: &'static [PropertyId] = &[$(PropertyId::$name,)*];

            /// The property of identifier `id`, if the specification defines one.
            pub fn from_id(id: u32) -> Option<PropertyId> {
                match id {
                    $($id => Some(PropertyId::$name),)*
                    _ => None,
                }
            }

            /// The data type of its value.
            pub fn value_type(self) -> PropertyType {
                match self {
                    $(PropertyId::$name => PropertyType::$ty,)*
                }
            }

            /// Bit set of the contexts it may appear in (see [`context_bit`]).
            fn contexts(self) -> u16 {
                match self {
                    $(PropertyId::$name => 0 $(| context_bit(ctx!($ctx)))*,)*
                }
            }
        }
    };
}

macro_rules! ctx {
    (Will) => {
        PropertyContext::Will
    };
    ($packet:ident) => {
        PropertyContext::Packet(PacketType::$packet)
    };
}

/// One bit per context: bit 0 the Will Properties, bit `n` the packet type `n`.
const fn context_bit(ctx: PropertyContext) -> u16 {
    match ctx {
        PropertyContext::Will => 1,
        PropertyContext::Packet(p) => 1 << (p as u16),
    }
}

properties! {
    /// 0x01 Payload Format Indicator (byte, 0 or 1).
    PayloadFormatIndicator = 0x01, Byte, [Publish, Will];
    /// 0x02 Message Expiry Interval (seconds).
    MessageExpiryInterval = 0x02, FourByteInteger, [Publish, Will];
    /// 0x03 Content Type.
    ContentType = 0x03, Utf8String, [Publish, Will];
    /// 0x08 Response Topic.
    ResponseTopic = 0x08, Utf8String, [Publish, Will];
    /// 0x09 Correlation Data.
    CorrelationData = 0x09, BinaryData, [Publish, Will];
    /// 0x0B Subscription Identifier (1..=268,435,455).
    SubscriptionIdentifier = 0x0B, VariableByteInteger, [Publish, Subscribe];
    /// 0x11 Session Expiry Interval (seconds; 0xFFFFFFFF never).
    SessionExpiryInterval = 0x11, FourByteInteger, [Connect, ConnAck, Disconnect];
    /// 0x12 Assigned Client Identifier.
    AssignedClientIdentifier = 0x12, Utf8String, [ConnAck];
    /// 0x13 Server Keep Alive (seconds).
    ServerKeepAlive = 0x13, TwoByteInteger, [ConnAck];
    /// 0x15 Authentication Method.
    AuthenticationMethod = 0x15, Utf8String, [Connect, ConnAck, Auth];
    /// 0x16 Authentication Data.
    AuthenticationData = 0x16, BinaryData, [Connect, ConnAck, Auth];
    /// 0x17 Request Problem Information (0 or 1).
    RequestProblemInformation = 0x17, Byte, [Connect];
    /// 0x18 Will Delay Interval (seconds).
    WillDelayInterval = 0x18, FourByteInteger, [Will];
    /// 0x19 Request Response Information (0 or 1).
    RequestResponseInformation = 0x19, Byte, [Connect];
    /// 0x1A Response Information.
    ResponseInformation = 0x1A, Utf8String, [ConnAck];
    /// 0x1C Server Reference.
    ServerReference = 0x1C, Utf8String, [ConnAck, Disconnect];
    /// 0x1F Reason String.
    ReasonString = 0x1F, Utf8String, [ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth];
    /// 0x21 Receive Maximum (1..=65,535).
    ReceiveMaximum = 0x21, TwoByteInteger, [Connect, ConnAck];
    /// 0x22 Topic Alias Maximum.
    TopicAliasMaximum = 0x22, TwoByteInteger, [Connect, ConnAck];
    /// 0x23 Topic Alias (1..=65,535).
    TopicAlias = 0x23, TwoByteInteger, [Publish];
    /// 0x24 Maximum QoS (0 or 1).
    MaximumQoS = 0x24, Byte, [ConnAck];
    /// 0x25 Retain Available (0 or 1).
    RetainAvailable = 0x25, Byte, [ConnAck];
    /// 0x26 User Property (any number, order kept).
    UserProperty = 0x26, Utf8StringPair, [Connect, ConnAck, Publish, Will, PubAck, PubRec, PubRel, PubComp, Subscribe, SubAck, Unsubscribe, UnsubAck, Disconnect, Auth];
    /// 0x27 Maximum Packet Size (1..).
    MaximumPacketSize = 0x27, FourByteInteger, [Connect, ConnAck];
    /// 0x28 Wildcard Subscription Available (0 or 1).
    WildcardSubscriptionAvailable = 0x28, Byte, [ConnAck];
    /// 0x29 Subscription Identifier Available (0 or 1).
    SubscriptionIdentifierAvailable = 0x29, Byte, [ConnAck];
    /// 0x2A Shared Subscription Available (0 or 1).
    SharedSubscriptionAvailable = 0x2A, Byte, [ConnAck];
}

impl PropertyId {
    /// The identifier byte.
    pub fn id(self) -> u8 {
        self as u8
    }

    /// Whether it may appear in `context`.
    pub fn allowed_in(self, context: PropertyContext) -> bool {
        self.contexts() & context_bit(context) != 0
    }

    /// Whether it may appear more than once: User Property anywhere, Subscription
    /// Identifier in a `PUBLISH` (one per matching subscription).
    pub fn repeatable_in(self, context: PropertyContext) -> bool {
        match self {
            PropertyId::UserProperty => true,
            PropertyId::SubscriptionIdentifier => context == PropertyContext::Packet(PacketType::Publish),
            _ => false,
        }
    }
}

/// The properties of one packet (or of a will). Every field is optional; strings and
/// binary data are views of the received packet. Which fields a packet may carry is
/// checked when it is decoded or encoded ([`PropertyId::allowed_in`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01: whether the payload is UTF-8 text.
    pub payload_format_indicator: Option<bool>,
    /// 0x02: seconds the message may live.
    pub message_expiry_interval: Option<u32>,
    /// 0x03: the payload's content type.
    pub content_type: Option<Bytes>,
    /// 0x08: where a response goes.
    pub response_topic: Option<Bytes>,
    /// 0x09: matches a response to its request.
    pub correlation_data: Option<Bytes>,
    /// 0x0B: one in `SUBSCRIBE`, one per matching subscription in a delivered `PUBLISH`.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11: seconds the session outlives the connection (0xFFFFFFFF: forever).
    pub session_expiry_interval: Option<u32>,
    /// 0x12: the client id a server chose.
    pub assigned_client_identifier: Option<Bytes>,
    /// 0x13: the keep alive the server imposes.
    pub server_keep_alive: Option<u16>,
    /// 0x15: the enhanced authentication method.
    pub authentication_method: Option<Bytes>,
    /// 0x16: the enhanced authentication data.
    pub authentication_data: Option<Bytes>,
    /// 0x17: whether the client wants Reason Strings and User Properties on failures.
    pub request_problem_information: Option<bool>,
    /// 0x18: seconds to wait before publishing a will.
    pub will_delay_interval: Option<u32>,
    /// 0x19: whether the client wants Response Information.
    pub request_response_information: Option<bool>,
    /// 0x1A: the base of response topics.
    pub response_information: Option<Bytes>,
    /// 0x1C: another server to use.
    pub server_reference: Option<Bytes>,
    /// 0x1F: a human-readable reason.
    pub reason_string: Option<Bytes>,
    /// 0x21: how many QoS 1/2 publications the sender accepts at once.
    pub receive_maximum: Option<u16>,
    /// 0x22: the highest topic alias the sender accepts.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23: the alias standing for the topic name.
    pub topic_alias: Option<u16>,
    /// 0x24: the highest QoS the server supports (0 or 1; absent means 2).
    pub maximum_qos: Option<QoS>,
    /// 0x25: whether retained messages are supported.
    pub retain_available: Option<bool>,
    /// 0x26: name-value pairs, in order, repeats allowed.
    pub user_properties: Vec<(Bytes, Bytes)>,
    /// 0x27: the largest packet the sender accepts.
    pub maximum_packet_size: Option<u32>,
    /// 0x28: whether wildcard subscriptions are supported.
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29: whether subscription identifiers are supported.
    pub subscription_identifier_available: Option<bool>,
    /// 0x2A: whether shared subscriptions are supported.
    pub shared_subscription_available: Option<bool>,
}

fn flag(id: PropertyId, byte: u8) -> Result<bool, Violation> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Violation::InvalidPropertyValue(id)),
    }
}

/// Stores `value` into `slot`, refusing a second one.
fn set<T>(slot: &mut Option<T>, id: PropertyId, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

impl Properties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        self.present().next().is_none()
    }

    /// The identifiers of the properties set, in numeric order (repeated ones once).
    pub fn present(&self) -> impl Iterator<Item = PropertyId> + '_ {
        PropertyId::ALL.iter().copied().filter(move |&id| self.has(id))
    }

    /// Whether the property `id` is set.
    pub fn has(&self, id: PropertyId) -> bool {
        use PropertyId::*;
        match id {
            PayloadFormatIndicator => self.payload_format_indicator.is_some(),
            MessageExpiryInterval => self.message_expiry_interval.is_some(),
            ContentType => self.content_type.is_some(),
            ResponseTopic => self.response_topic.is_some(),
            CorrelationData => self.correlation_data.is_some(),
            SubscriptionIdentifier => !self.subscription_identifiers.is_empty(),
            SessionExpiryInterval => self.session_expiry_interval.is_some(),
            AssignedClientIdentifier => self.assigned_client_identifier.is_some(),
            ServerKeepAlive => self.server_keep_alive.is_some(),
            AuthenticationMethod => self.authentication_method.is_some(),
            AuthenticationData => self.authentication_data.is_some(),
            RequestProblemInformation => self.request_problem_information.is_some(),
            WillDelayInterval => self.will_delay_interval.is_some(),
            RequestResponseInformation => self.request_response_information.is_some(),
            ResponseInformation => self.response_information.is_some(),
            ServerReference => self.server_reference.is_some(),
            ReasonString => self.reason_string.is_some(),
            ReceiveMaximum => self.receive_maximum.is_some(),
            TopicAliasMaximum => self.topic_alias_maximum.is_some(),
            TopicAlias => self.topic_alias.is_some(),
            MaximumQoS => self.maximum_qos.is_some(),
            RetainAvailable => self.retain_available.is_some(),
            UserProperty => !self.user_properties.is_empty(),
            MaximumPacketSize => self.maximum_packet_size.is_some(),
            WildcardSubscriptionAvailable => self.wildcard_subscription_available.is_some(),
            SubscriptionIdentifierAvailable => self.subscription_identifier_available.is_some(),
            SharedSubscriptionAvailable => self.shared_subscription_available.is_some(),
        }
    }

    /// Removes the property `id` (every value of a repeated one): what a broker does
    /// before forwarding a property meant for it alone.
    pub fn remove(&mut self, id: PropertyId) {
        use PropertyId::*;
        match id {
            PayloadFormatIndicator => self.payload_format_indicator = None,
            MessageExpiryInterval => self.message_expiry_interval = None,
            ContentType => self.content_type = None,
            ResponseTopic => self.response_topic = None,
            CorrelationData => self.correlation_data = None,
            SubscriptionIdentifier => self.subscription_identifiers.clear(),
            SessionExpiryInterval => self.session_expiry_interval = None,
            AssignedClientIdentifier => self.assigned_client_identifier = None,
            ServerKeepAlive => self.server_keep_alive = None,
            AuthenticationMethod => self.authentication_method = None,
            AuthenticationData => self.authentication_data = None,
            RequestProblemInformation => self.request_problem_information = None,
            WillDelayInterval => self.will_delay_interval = None,
            RequestResponseInformation => self.request_response_information = None,
            ResponseInformation => self.response_information = None,
            ServerReference => self.server_reference = None,
            ReasonString => self.reason_string = None,
            ReceiveMaximum => self.receive_maximum = None,
            TopicAliasMaximum => self.topic_alias_maximum = None,
            TopicAlias => self.topic_alias = None,
            MaximumQoS => self.maximum_qos = None,
            RetainAvailable => self.retain_available = None,
            UserProperty => self.user_properties.clear(),
            MaximumPacketSize => self.maximum_packet_size = None,
            WildcardSubscriptionAvailable => self.wildcard_subscription_available = None,
            SubscriptionIdentifierAvailable => self.subscription_identifier_available = None,
            SharedSubscriptionAvailable => self.shared_subscription_available = None,
        }
    }

    /// Keeps only the properties allowed in `context`.
    pub fn retain_allowed(&mut self, context: PropertyContext) {
        for &id in PropertyId::ALL {
            if !id.allowed_in(context) {
                self.remove(id);
            }
        }
    }

    /// Reads a property block (its length, then the properties) for `context`.
    pub(crate) fn decode(r: &mut Reader, context: PropertyContext) -> Result<Properties, DecodeError> {
        let len = r.vbi()? as usize;
        if len == 0 {
            // The common case: no properties, and no view of nothing to take.
            return Ok(Properties::default());
        }
        let mut r = Reader::new(r.take(len)?);
        let mut p = Properties::default();
        while !r.is_empty() {
            let raw = r.vbi()?;
            let id = PropertyId::from_id(raw).ok_or(DecodeError::UnknownProperty(raw))?;
            if !id.allowed_in(context) {
                return Err(Violation::PropertyNotAllowed { property: id, context }.into());
            }
            p.read_value(id, &mut r, context)?;
        }
        p.check_values()?;
        Ok(p)
    }

    fn read_value(&mut self, id: PropertyId, r: &mut Reader, context: PropertyContext) -> Result<(), DecodeError> {
        use PropertyId::*;
        match id {
            PayloadFormatIndicator => set(&mut self.payload_format_indicator, id, flag(id, r.u8()?)?),
            MessageExpiryInterval => set(&mut self.message_expiry_interval, id, r.u32()?),
            ContentType => set(&mut self.content_type, id, r.string()?),
            ResponseTopic => set(&mut self.response_topic, id, r.string()?),
            CorrelationData => set(&mut self.correlation_data, id, r.binary()?),
            SubscriptionIdentifier => {
                let value = r.vbi()?;
                if !self.subscription_identifiers.is_empty() && !id.repeatable_in(context) {
                    return Err(DecodeError::DuplicateProperty(id));
                }
                self.subscription_identifiers.push(value);
                Ok(())
            }
            SessionExpiryInterval => set(&mut self.session_expiry_interval, id, r.u32()?),
            AssignedClientIdentifier => set(&mut self.assigned_client_identifier, id, r.string()?),
            ServerKeepAlive => set(&mut self.server_keep_alive, id, r.u16()?),
            AuthenticationMethod => set(&mut self.authentication_method, id, r.string()?),
            AuthenticationData => set(&mut self.authentication_data, id, r.binary()?),
            RequestProblemInformation => set(&mut self.request_problem_information, id, flag(id, r.u8()?)?),
            WillDelayInterval => set(&mut self.will_delay_interval, id, r.u32()?),
            RequestResponseInformation => set(&mut self.request_response_information, id, flag(id, r.u8()?)?),
            ResponseInformation => set(&mut self.response_information, id, r.string()?),
            ServerReference => set(&mut self.server_reference, id, r.string()?),
            ReasonString => set(&mut self.reason_string, id, r.string()?),
            ReceiveMaximum => set(&mut self.receive_maximum, id, r.u16()?),
            TopicAliasMaximum => set(&mut self.topic_alias_maximum, id, r.u16()?),
            TopicAlias => set(&mut self.topic_alias, id, r.u16()?),
            MaximumQoS => {
                let qos = match r.u8()? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    _ => return Err(Violation::InvalidPropertyValue(id).into()),
                };
                set(&mut self.maximum_qos, id, qos)
            }
            RetainAvailable => set(&mut self.retain_available, id, flag(id, r.u8()?)?),
            UserProperty => {
                let name = r.string()?;
                let value = r.string()?;
                self.user_properties.push((name, value));
                Ok(())
            }
            MaximumPacketSize => set(&mut self.maximum_packet_size, id, r.u32()?),
            WildcardSubscriptionAvailable => set(&mut self.wildcard_subscription_available, id, flag(id, r.u8()?)?),
            SubscriptionIdentifierAvailable => set(&mut self.subscription_identifier_available, id, flag(id, r.u8()?)?),
            SharedSubscriptionAvailable => set(&mut self.shared_subscription_available, id, flag(id, r.u8()?)?),
        }
    }

    /// The value rules both directions enforce: no zero Receive Maximum, Maximum Packet
    /// Size, Topic Alias or Subscription Identifier, no Maximum QoS of 2, no
    /// Authentication Data without an Authentication Method.
    fn check_values(&self) -> Result<(), Violation> {
        let zero = |v: Option<u32>, id| match v {
            Some(0) => Err(Violation::InvalidPropertyValue(id)),
            _ => Ok(()),
        };
        zero(self.receive_maximum.map(u32::from), PropertyId::ReceiveMaximum)?;
        zero(self.maximum_packet_size, PropertyId::MaximumPacketSize)?;
        zero(self.topic_alias.map(u32::from), PropertyId::TopicAlias)?;
        if self.subscription_identifiers.iter().any(|&id| id == 0 || id > VBI_MAX) {
            return Err(Violation::InvalidPropertyValue(PropertyId::SubscriptionIdentifier));
        }
        if self.maximum_qos == Some(QoS::ExactlyOnce) {
            return Err(Violation::InvalidPropertyValue(PropertyId::MaximumQoS));
        }
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(Violation::AuthDataWithoutMethod);
        }
        Ok(())
    }

    /// Everything the encoder checks before writing: each property allowed in
    /// `context`, repeated only where it may be, values in range, strings and binary
    /// data within their limits.
    pub(crate) fn validate(&self, context: PropertyContext) -> Result<(), Violation> {
        for id in self.present() {
            if !id.allowed_in(context) {
                return Err(Violation::PropertyNotAllowed { property: id, context });
            }
        }
        if self.subscription_identifiers.len() > 1 && !PropertyId::SubscriptionIdentifier.repeatable_in(context) {
            return Err(Violation::InvalidPropertyValue(PropertyId::SubscriptionIdentifier));
        }
        self.check_values()?;
        for s in [
            &self.content_type,
            &self.response_topic,
            &self.assigned_client_identifier,
            &self.authentication_method,
            &self.response_information,
            &self.server_reference,
            &self.reason_string,
        ]
        .into_iter()
        .flatten()
        {
            check_string(s)?;
        }
        for b in [&self.correlation_data, &self.authentication_data]
            .into_iter()
            .flatten()
        {
            check_binary(b)?;
        }
        for (name, value) in &self.user_properties {
            check_string(name)?;
            check_string(value)?;
        }
        Ok(())
    }

    /// Bytes of the properties themselves, without the length in front.
    pub(crate) fn body_len(&self) -> usize {
        let field = |b: &Option<Bytes>| b.as_ref().map_or(0, |b| 1 + 2 + b.len());
        let fixed = |present: bool, n: usize| if present { 1 + n } else { 0 };
        fixed(self.payload_format_indicator.is_some(), 1)
            + fixed(self.message_expiry_interval.is_some(), 4)
            + field(&self.content_type)
            + field(&self.response_topic)
            + field(&self.correlation_data)
            + self
                .subscription_identifiers
                .iter()
                .map(|&v| 1 + vbi_len(v))
                .sum::<usize>()
            + fixed(self.session_expiry_interval.is_some(), 4)
            + field(&self.assigned_client_identifier)
            + fixed(self.server_keep_alive.is_some(), 2)
            + field(&self.authentication_method)
            + field(&self.authentication_data)
            + fixed(self.request_problem_information.is_some(), 1)
            + fixed(self.will_delay_interval.is_some(), 4)
            + fixed(self.request_response_information.is_some(), 1)
            + field(&self.response_information)
            + field(&self.server_reference)
            + field(&self.reason_string)
            + fixed(self.receive_maximum.is_some(), 2)
            + fixed(self.topic_alias_maximum.is_some(), 2)
            + fixed(self.topic_alias.is_some(), 2)
            + fixed(self.maximum_qos.is_some(), 1)
            + fixed(self.retain_available.is_some(), 1)
            + self
                .user_properties
                .iter()
                .map(|(n, v)| 1 + 2 + n.len() + 2 + v.len())
                .sum::<usize>()
            + fixed(self.maximum_packet_size.is_some(), 4)
            + fixed(self.wildcard_subscription_available.is_some(), 1)
            + fixed(self.subscription_identifier_available.is_some(), 1)
            + fixed(self.shared_subscription_available.is_some(), 1)
    }

    /// Bytes of the block: the length as a Variable Byte Integer, then the properties.
    pub(crate) fn encoded_len(&self) -> usize {
        let n = self.body_len();
        vbi_len(n.min(VBI_MAX as usize) as u32) + n
    }

    /// Writes the block (length, then properties in numeric order). The caller checked
    /// it with [`validate`](Self::validate) and the packet's size.
    pub(crate) fn write<S: SinkExt + ?Sized>(&self, out: &mut S) {
        use PropertyId::*;
        out.put_vbi(self.body_len() as u32);
        let byte = |out: &mut S, id: PropertyId, v: Option<u8>| {
            if let Some(v) = v {
                out.put_u8(id.id());
                out.put_u8(v);
            }
        };
        let two = |out: &mut S, id: PropertyId, v: Option<u16>| {
            if let Some(v) = v {
                out.put_u8(id.id());
                out.put_u16(v);
            }
        };
        let four = |out: &mut S, id: PropertyId, v: Option<u32>| {
            if let Some(v) = v {
                out.put_u8(id.id());
                out.put_u32(v);
            }
        };
        let field = |out: &mut S, id: PropertyId, v: &Option<Bytes>| {
            if let Some(v) = v {
                out.put_u8(id.id());
                out.put_field(v);
            }
        };
        byte(out, PayloadFormatIndicator, self.payload_format_indicator.map(u8::from));
        four(out, MessageExpiryInterval, self.message_expiry_interval);
        field(out, ContentType, &self.content_type);
        field(out, ResponseTopic, &self.response_topic);
        field(out, CorrelationData, &self.correlation_data);
        for &v in &self.subscription_identifiers {
            out.put_u8(SubscriptionIdentifier.id());
            out.put_vbi(v);
        }
        four(out, SessionExpiryInterval, self.session_expiry_interval);
        field(out, AssignedClientIdentifier, &self.assigned_client_identifier);
        two(out, ServerKeepAlive, self.server_keep_alive);
        field(out, AuthenticationMethod, &self.authentication_method);
        field(out, AuthenticationData, &self.authentication_data);
        byte(
            out,
            RequestProblemInformation,
            self.request_problem_information.map(u8::from),
        );
        four(out, WillDelayInterval, self.will_delay_interval);
        byte(
            out,
            RequestResponseInformation,
            self.request_response_information.map(u8::from),
        );
        field(out, ResponseInformation, &self.response_information);
        field(out, ServerReference, &self.server_reference);
        field(out, ReasonString, &self.reason_string);
        two(out, ReceiveMaximum, self.receive_maximum);
        two(out, TopicAliasMaximum, self.topic_alias_maximum);
        two(out, TopicAlias, self.topic_alias);
        byte(out, MaximumQoS, self.maximum_qos.map(QoS::bits));
        byte(out, RetainAvailable, self.retain_available.map(u8::from));
        for (name, value) in &self.user_properties {
            out.put_u8(UserProperty.id());
            out.put_field(name);
            out.put_field(value);
        }
        four(out, MaximumPacketSize, self.maximum_packet_size);
        byte(
            out,
            WildcardSubscriptionAvailable,
            self.wildcard_subscription_available.map(u8::from),
        );
        byte(
            out,
            SubscriptionIdentifierAvailable,
            self.subscription_identifier_available.map(u8::from),
        );
        byte(
            out,
            SharedSubscriptionAvailable,
            self.shared_subscription_available.map(u8::from),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &'static [u8], context: PropertyContext) -> Result<Properties, DecodeError> {
        Properties::decode(&mut Reader::new(Bytes::from_static(block)), context)
    }

    const PUBLISH: PropertyContext = PropertyContext::Packet(PacketType::Publish);
    const CONNACK: PropertyContext = PropertyContext::Packet(PacketType::ConnAck);

    #[test]
    fn table_2_4_has_27_properties_and_their_types() {
        assert_eq!(PropertyId::ALL.len(), 27);
        let defined = (0..=0xffu32).filter(|&i| PropertyId::from_id(i).is_some()).count();
        assert_eq!(defined, 27);
        assert_eq!(PropertyId::from_id(0x2A), Some(PropertyId::SharedSubscriptionAvailable));
        assert_eq!(PropertyId::from_id(0x2B), None);
        assert_eq!(
            PropertyId::SubscriptionIdentifier.value_type(),
            PropertyType::VariableByteInteger
        );
        assert_eq!(PropertyId::UserProperty.value_type(), PropertyType::Utf8StringPair);
        assert!(PropertyId::WillDelayInterval.allowed_in(PropertyContext::Will));
        assert!(!PropertyId::WillDelayInterval.allowed_in(PropertyContext::Packet(PacketType::Connect)));
        assert!(PropertyId::UserProperty.allowed_in(PropertyContext::Packet(PacketType::Auth)));
        assert!(!PropertyId::UserProperty.allowed_in(PropertyContext::Packet(PacketType::PingReq)));
    }

    #[test]
    fn every_property_round_trips_where_it_is_allowed() {
        let mut p = Properties {
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(7),
            content_type: Some("text/plain".into()),
            response_topic: Some("r".into()),
            correlation_data: Some(Bytes::from_static(b"\0\xff")),
            subscription_identifiers: vec![1, 268_435_455],
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
            topic_alias: Some(3),
            ..Properties::default()
        };
        p.validate(PUBLISH).unwrap();
        let mut out = Vec::new();
        p.write(&mut out);
        assert_eq!(out.len(), p.encoded_len());
        assert_eq!(Properties::decode(&mut Reader::new(out.into()), PUBLISH), Ok(p.clone()));
        p.topic_alias = None;
        p.subscription_identifiers.clear();
        p.validate(PropertyContext::Will).unwrap();
    }

    #[test]
    fn a_property_in_the_wrong_packet_is_malformed() {
        // Topic Alias (0x23) in a CONNACK.
        let err = decode(b"\x03\x23\x00\x01", CONNACK).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Invalid(Violation::PropertyNotAllowed {
                property: PropertyId::TopicAlias,
                context: CONNACK
            })
        );
        assert_eq!(err.reason_code(), super::super::ReasonCode::MalformedPacket);
        // Will Delay Interval in a PUBLISH.
        assert!(matches!(
            decode(b"\x05\x18\x00\x00\x00\x01", PUBLISH),
            Err(DecodeError::Invalid(Violation::PropertyNotAllowed { .. }))
        ));
    }

    #[test]
    fn a_duplicate_is_a_protocol_error_except_where_repeats_are_allowed() {
        let err = decode(b"\x04\x01\x00\x01\x01", PUBLISH).unwrap_err();
        assert_eq!(err, DecodeError::DuplicateProperty(PropertyId::PayloadFormatIndicator));
        assert_eq!(err.reason_code(), super::super::ReasonCode::ProtocolError);
        // Two Subscription Identifiers: fine in PUBLISH, not in SUBSCRIBE.
        assert_eq!(
            decode(b"\x04\x0b\x01\x0b\x02", PUBLISH)
                .unwrap()
                .subscription_identifiers,
            [1, 2]
        );
        assert_eq!(
            decode(b"\x04\x0b\x01\x0b\x02", PropertyContext::Packet(PacketType::Subscribe)),
            Err(DecodeError::DuplicateProperty(PropertyId::SubscriptionIdentifier))
        );
        // Two User Properties with the same name: kept, in order.
        let p = decode(b"\x0d\x26\x00\x01a\x00\x01b\x26\x00\x01a\x00\x00", PUBLISH).unwrap();
        assert_eq!(p.user_properties.len(), 2);
    }

    #[test]
    fn values_out_of_range_are_protocol_errors() {
        for (block, id) in [
            (&b"\x02\x01\x02"[..], PropertyId::PayloadFormatIndicator),
            (b"\x02\x0b\x00", PropertyId::SubscriptionIdentifier),
        ] {
            let block = Bytes::copy_from_slice(block);
            let err = Properties::decode(&mut Reader::new(block), PUBLISH).unwrap_err();
            assert_eq!(err, DecodeError::Invalid(Violation::InvalidPropertyValue(id)));
            assert_eq!(err.reason_code(), super::super::ReasonCode::ProtocolError);
        }
        for (block, id) in [
            (&b"\x02\x24\x02"[..], PropertyId::MaximumQoS),
            (b"\x03\x21\x00\x00", PropertyId::ReceiveMaximum),
            (b"\x05\x27\x00\x00\x00\x00", PropertyId::MaximumPacketSize),
            (b"\x02\x25\x07", PropertyId::RetainAvailable),
        ] {
            let block = Bytes::copy_from_slice(block);
            let err = Properties::decode(&mut Reader::new(block), CONNACK).unwrap_err();
            assert_eq!(err, DecodeError::Invalid(Violation::InvalidPropertyValue(id)));
        }
        // A Topic Alias of 0: 0x94 Topic Alias invalid.
        let err = decode(b"\x03\x23\x00\x00", PUBLISH).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Invalid(Violation::InvalidPropertyValue(PropertyId::TopicAlias))
        );
        assert_eq!(err.reason_code(), super::super::ReasonCode::TopicAliasInvalid);
        let connect = PropertyContext::Packet(PacketType::Connect);
        assert_eq!(
            decode(b"\x04\x16\x00\x01x", connect),
            Err(DecodeError::Invalid(Violation::AuthDataWithoutMethod))
        );
    }

    #[test]
    fn unknown_ids_lengths_and_strings_are_malformed() {
        assert_eq!(decode(b"\x02\x04\x00", PUBLISH), Err(DecodeError::UnknownProperty(4)));
        assert_eq!(
            decode(b"\x02\x2b\x00", PUBLISH),
            Err(DecodeError::UnknownProperty(0x2b))
        );
        // An identifier in a non-shortest form.
        assert_eq!(
            decode(b"\x03\x81\x00\x01", PUBLISH),
            Err(DecodeError::VarIntNotShortest)
        );
        // The block claims more than the packet holds; a value runs past the block.
        assert_eq!(decode(b"\x05\x01\x01", PUBLISH), Err(DecodeError::Truncated));
        assert_eq!(
            decode(b"\x02\x02\x00\x00\x00\x01", PUBLISH),
            Err(DecodeError::Truncated)
        );
        assert_eq!(decode(b"\x05\x03\x00\x02a\0", PUBLISH), Err(DecodeError::NullCharacter));
        assert_eq!(
            decode(b"\x05\x03\x00\x02\xc3\x28", PUBLISH),
            Err(DecodeError::InvalidUtf8)
        );
    }
}
