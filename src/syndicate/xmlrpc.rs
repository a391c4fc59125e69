//! The legacy `weblogUpdates.ping` (XML-RPC), written and read with
//! quick-xml rather than by hand: the request is built by a writer (text is
//! escaped by it), and the reply is parsed, not searched for substrings.

use anyhow::{Context, Result};
use quick_xml::Reader;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesText, Event};

/// The request body: `weblogUpdates.ping(site name, site URL)` (PING-01).
pub(crate) fn ping_request(site_name: &str, site_url: &str) -> Result<Vec<u8>> {
    let mut w = Writer::new(Vec::with_capacity(512));
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    w.get_mut().push(b'\n');
    w.create_element("methodCall").write_inner_content(|w| {
        w.create_element("methodName")
            .write_text_content(BytesText::new("weblogUpdates.ping"))?;
        w.create_element("params").write_inner_content(|w| {
            for text in [site_name, site_url] {
                w.create_element("param").write_inner_content(|w| {
                    w.create_element("value").write_inner_content(|w| {
                        w.create_element("string")
                            .write_text_content(BytesText::new(text))?;
                        Ok(())
                    })?;
                    Ok(())
                })?;
            }
            Ok(())
        })?;
        Ok(())
    })?;
    let mut out = w.into_inner();
    out.push(b'\n');
    Ok(out)
}

/// Does a reply say the ping failed (PING-03)? An XML-RPC `<fault>`, or a
/// struct member `flerror` whose value is true. A reply that does not parse
/// is an error (the caller retries).
pub(crate) fn reply_is_fault(reply: &[u8]) -> Result<bool> {
    let mut reader = Reader::from_reader(reply);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    // The element names open around the current event, innermost last.
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut member_name = String::new();
    loop {
        match reader
            .read_event_into(&mut buf)
            .context("the ping server's reply is not XML")?
        {
            Event::Start(e) => {
                if e.local_name().as_ref() == b"fault" {
                    return Ok(true);
                }
                if e.local_name().as_ref() == b"member" {
                    member_name.clear();
                }
                path.push(e.local_name().as_ref().to_vec());
            }
            Event::Empty(e) if e.local_name().as_ref() == b"fault" => return Ok(true),
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let text = t.decode()?.into_owned();
                match path.last().map(Vec::as_slice) {
                    Some(b"name") if path.iter().any(|p| p == b"member") => member_name = text,
                    Some(b"boolean") if member_name == "flerror" => {
                        return Ok(text.trim() == "1");
                    }
                    _ => {}
                }
            }
            Event::Eof => return Ok(false),
            _ => {}
        }
        buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_escapes_text_and_parses_back() {
        let body = ping_request("Tin <nóng> & \"mới\"", "http://x.example/?a=1&b=2").unwrap();
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(
            text.contains("<methodName>weblogUpdates.ping</methodName>"),
            "{text}"
        );
        assert!(text.contains("Tin &lt;nóng&gt; &amp;"), "{text}");
        // Every string parses back to what went in.
        let mut reader = Reader::from_reader(body.as_slice());
        let mut buf = Vec::new();
        let mut strings: Vec<String> = Vec::new();
        let mut in_string = false;
        loop {
            match reader.read_event_into(&mut buf).unwrap() {
                Event::Start(e) if e.name().as_ref() == b"string" => {
                    in_string = true;
                    strings.push(String::new());
                }
                Event::End(e) if e.name().as_ref() == b"string" => in_string = false,
                Event::Text(t) if in_string => {
                    strings.last_mut().unwrap().push_str(&t.decode().unwrap())
                }
                Event::GeneralRef(r) if in_string => {
                    let entity = match r.decode().unwrap().as_ref() {
                        "lt" => "<",
                        "gt" => ">",
                        "amp" => "&",
                        "quot" => "\"",
                        "apos" => "'",
                        other => panic!("unexpected entity {other}"),
                    };
                    strings.last_mut().unwrap().push_str(entity);
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        assert_eq!(
            strings,
            vec!["Tin <nóng> & \"mới\"", "http://x.example/?a=1&b=2"]
        );
    }

    #[test]
    fn faults_and_flerror_are_recognised() {
        let ok = br#"<?xml version="1.0"?><methodResponse><params><param><value><struct>
            <member><name>flerror</name><value><boolean>0</boolean></value></member>
            <member><name>message</name><value>Thanks for the ping.</value></member>
            </struct></value></param></params></methodResponse>"#;
        let flerror = br#"<methodResponse><params><param><value><struct>
            <member><name>message</name><value>busy</value></member>
            <member><name>flerror</name><value><boolean>1</boolean></value></member>
            </struct></value></param></params></methodResponse>"#;
        let fault = br#"<methodResponse><fault><value><struct>
            <member><name>faultCode</name><value><int>4</int></value></member>
            </struct></value></fault></methodResponse>"#;
        assert!(!reply_is_fault(ok).unwrap());
        assert!(reply_is_fault(flerror).unwrap());
        assert!(reply_is_fault(fault).unwrap());
        // A message that merely mentions the words is not a fault.
        let mentions = br#"<methodResponse><params><param><value><string>no &lt;fault&gt; here, flerror 1</string></value></param></params></methodResponse>"#;
        assert!(!reply_is_fault(mentions).unwrap());
    }
}
