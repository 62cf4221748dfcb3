# core-ssh-keys: the keys of attrib core-ssh-authorized-keys in a managed block of the user's
# authorized_keys (lines outside the block are kept). Attribs: core-root, core-ssh-user (default
# root), core-ssh-authorized-keys (a list of OpenSSH public keys; set it in the deployment data).
ROOT=$(fulcrum-attr core-root 2>/dev/null || echo /); ROOT=${ROOT%/}
USER_NAME=$(fulcrum-attr core-ssh-user 2>/dev/null || echo root)
case "$USER_NAME" in ''|*[!a-z0-9_-]*) echo "core-ssh-keys: invalid user name '$USER_NAME'" >&2; exit 1 ;; esac
if [ "$USER_NAME" = root ]; then HOME_DIR=$ROOT/root; else HOME_DIR=$ROOT/home/$USER_NAME; fi
KEYS=$FULCRUM_DIR/keys
# A JSON list of strings, one key per line (keys hold no quotes or backslashes).
(fulcrum-attr core-ssh-authorized-keys 2>/dev/null || echo '[]') | sed -e 's/^[[:space:]]*\[//' -e 's/\][[:space:]]*$//' \
  | sed 's/"[[:space:]]*,[[:space:]]*"/"\n"/g' | sed -e 's/^[[:space:]]*"//' -e 's/"[[:space:]]*$//' | grep -v '^$' > "$KEYS" || true
n=0
while IFS= read -r k; do
  n=$((n + 1))
  case "$k" in ssh-*|ecdsa-*|sk-*) ;; *) echo "core-ssh-keys: entry $n of core-ssh-authorized-keys is not an OpenSSH public key: '$(printf '%.40s' "$k")'" >&2; exit 1 ;; esac
done < "$KEYS"
FILE=$HOME_DIR/.ssh/authorized_keys
mkdir -p "$HOME_DIR/.ssh" && chmod 700 "$HOME_DIR/.ssh"
[ -e "$FILE" ] || : > "$FILE"
{
  sed '/^# BEGIN fulcrum core-ssh-keys$/,/^# END fulcrum core-ssh-keys$/d' "$FILE"
  echo "# BEGIN fulcrum core-ssh-keys"; cat "$KEYS"; echo "# END fulcrum core-ssh-keys"
} | fulcrum-put "$FILE"
chmod 600 "$FILE"
[ -z "$ROOT" ] && [ "$USER_NAME" != root ] && chown -R "$USER_NAME" "$HOME_DIR/.ssh" 2>/dev/null || true
fulcrum-wall core-ssh-key-count "$n"
echo "$n key(s) authorized for $USER_NAME"
